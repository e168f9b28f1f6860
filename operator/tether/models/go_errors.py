"""Go error aggregation as Istio's validation does it (hashicorp/go-multierror).

Istio builds its result with three helpers whose quirks change the final text:

- ``AppendValidation`` keeps errors and warnings;
- ``appendErrors`` keeps only the errors of a nested validation (its warnings are dropped);
- appending to nothing returns the appended value unchanged, so one plain error prints as itself,
  while anything that went through ``multierror.Append`` prints as
  ``"N error(s) occurred:\\n\\t* ...\\n\\n"`` (``labels.Validate`` always returns a multierror).

``Err`` and ``Validation`` model those values so tether prints exactly what Istio prints.
"""

from __future__ import annotations

from typing import NamedTuple


class Err(NamedTuple):
    """A Go ``error`` value: nil (no messages), a plain error, or a flattened multierror."""

    messages: tuple[str, ...] = ()
    multi: bool = False

    def __bool__(self) -> bool:
        return bool(self.messages)

    @staticmethod
    def of(message: str | None) -> Err:
        """A plain error, or nil for None."""
        return Err((message,)) if message else Err()

    @staticmethod
    def multierror(messages: list[str]) -> Err:
        """What ``multierror.Append`` builds from a list: nil when empty."""
        return Err(tuple(messages), True) if messages else Err()

    def text(self) -> str:
        """``err.Error()`` in Go."""
        if not self.messages:
            return ""
        if not self.multi:
            return self.messages[0]
        if len(self.messages) == 1:
            return f"1 error occurred:\n\t* {self.messages[0]}\n\n"
        points = "\n\t".join(f"* {m}" for m in self.messages)
        return f"{len(self.messages)} errors occurred:\n\t{points}\n\n"


def _join(a: Err, b: Err) -> Err:
    if not a:
        return b
    if not b:
        return a
    return Err(a.messages + b.messages, True)


class Validation(NamedTuple):
    """Istio's ``Validation{Err, Warning}``."""

    err: Err = Err()
    warning: Err = Err()


Item = Validation | Err | str | None


def _as_validation(item: Item) -> Validation:
    if item is None or isinstance(item, str):
        return Validation(Err.of(item))
    if isinstance(item, Err):
        return Validation(item)
    return item


def append_validation(v: Validation, *items: Item) -> Validation:
    """Istio ``AppendValidation``: errors and warnings both kept."""
    for item in items:
        other = _as_validation(item)
        v = Validation(_join(v.err, other.err), _join(v.warning, other.warning))
    return v


def append_errors(err: Err, *items: Item) -> Err:
    """Istio ``appendErrors``: a nested Validation contributes its errors only."""
    for item in items:
        err = _join(err, _as_validation(item).err)
    return err


def warning(message: str) -> Validation:
    """Istio ``WrapWarning(errors.New(message))``."""
    return Validation(warning=Err.of(message))
