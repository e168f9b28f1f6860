"""The table document's ``session`` block → the gateway's per-request session settings."""

from __future__ import annotations

from dataclasses import dataclass

from tether.models.table import SessionPolicy

from .signing import session_context

DEFAULT_WINDOW = 86_400  # validity of a signed value without an idle timeout (sliding, 24 h)


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """Everything a request needs about one Service's sessions (immutable, built per table).

    ``window`` is the sliding validity of a signed value (the idle timeout, or DEFAULT_WINDOW);
    ``absolute`` the lifetime from the value's first issue (0 = none); ``max_age`` the
    Set-Cookie Max-Age (0 = a session cookie); ``context`` the MAC context.
    """

    kind: str  # "cookie" | "header"
    name: str
    path: str = "/"
    max_age: int = 0
    absolute: int = 0
    window: int = DEFAULT_WINDOW
    attributes: tuple[tuple[str, str], ...] = ()
    strict: bool = False
    signing: str = "signed"  # "signed" | "compat" | "unsigned"
    drain: bool = True
    context: bytes = b""

    @property
    def lname(self) -> bytes:
        """The header name in lowercase bytes (header sessions)."""
        return self.name.lower().encode()


def spec_from_model(session: SessionPolicy, namespace: str, service: str) -> SessionSpec:
    """One document's session block, for the Service ``namespace/service``."""
    return SessionSpec(
        kind=session.kind,
        name=session.name,
        path=session.path,
        max_age=session.cookie_max_age_seconds or 0,
        absolute=session.absolute_timeout_seconds or 0,
        window=session.idle_timeout_seconds or DEFAULT_WINDOW,
        attributes=tuple((a.name, a.value) for a in session.attributes),
        strict=session.strict,
        signing=session.signing,
        drain=session.drain,
        context=session_context(namespace, service, session.name),
    )
