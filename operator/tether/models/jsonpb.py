"""Field types that decode JSON exactly as Istio's decoder (golang/protobuf ``jsonpb``) does.

Istio's webhook decodes a rule's ``spec`` with ``jsonpb.Unmarshaler`` (strict, then again with
unknown fields allowed). What that means for tether, and what these types reproduce:

- fields are decoded in proto *declaration* order and the first failure ends decoding; its text
  is what Istio answers after ``error decoding configuration: ``. Models list their fields in
  that order, and a failure Istio would report raises ``go_decode`` with Go's exact text:
  ``bad Duration: time: invalid duration "abc"``,
  ``json: cannot unmarshal number 3000000000 into Go value of type int32``;
- a JSON ``null`` field is unset; a ``null`` *item* of a list (or value of a map) is the zero
  value: an empty message, ``""``, ``0``;
- enums accept their name or their number; uint64 also accepts a quoted decimal string.

Invariant: a value these types accept is a value Istio's decoder accepts, with the same result.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from tether.models.duration import DurationError, GoDuration, parse_go_duration

GO_DECODE = "go_decode"
INT32 = (-(1 << 31), (1 << 31) - 1)
UINT32 = (0, (1 << 32) - 1)
UINT64 = (0, (1 << 64) - 1)


def go_decode_error(text: str) -> PydanticCustomError:
    """An error Istio's decoder reports with exactly ``text``."""
    return PydanticCustomError(GO_DECODE, "{go}", {"go": text})


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object"


def _integer(go_type: str, low: int, high: int) -> Any:
    def check(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            if low <= value <= high:
                return value
            raise go_decode_error(
                f"json: cannot unmarshal number {value} into Go value of type {go_type}"
            )
        raise ValueError(f"must be an integer ({go_type}), got {value!r}")

    return check


def _uint64(value: Any) -> int:
    """A JSON integer or a quoted string of decimal digits (jsonpb's ``trimQuote``)."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    elif isinstance(value, str):
        raise ValueError(f"must be an unsigned integer or a string of digits, got {value!r}")
    return _integer("uint64", *UINT64)(value)


def _duration(value: Any) -> GoDuration:
    if isinstance(value, GoDuration):
        return value
    if not isinstance(value, str):
        raise go_decode_error(
            f"json: cannot unmarshal {_json_kind(value)} into Go value of type string"
        )
    try:
        return GoDuration(value, parse_go_duration(value))
    except DurationError as exc:
        raise go_decode_error(f"bad Duration: {exc}") from None


def enum(names: tuple[str, ...]) -> Any:
    """A proto enum: its name, or its number (jsonpb accepts both); the name is kept."""

    def check(value: Any) -> str | int:
        if isinstance(value, str) and value in names:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return names[value] if 0 <= value < len(names) else value
        raise ValueError(f"unknown value {value!r}; one of {', '.join(names)}")

    return check


def _null_items(zero: Any) -> Any:
    def fill(value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, list | tuple):
            return tuple(zero() if item is None else item for item in value)
        return value

    return fill


def _null_values(zero: Any) -> Any:
    def fill(value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, dict):
            return {k: zero if v is None else v for k, v in value.items()}
        return value

    return fill


_T = TypeVar("_T")
Int32 = Annotated[int, BeforeValidator(_integer("int32", *INT32))]
Uint32 = Annotated[int, BeforeValidator(_integer("uint32", *UINT32))]
Uint64 = Annotated[int, BeforeValidator(_uint64)]
Duration = Annotated[
    GoDuration, BeforeValidator(_duration), PlainSerializer(lambda d: d.text, return_type=str)
]
Messages = Annotated[tuple[_T, ...], BeforeValidator(_null_items(dict))]
"""A repeated message field: a null item decodes as an empty message."""
Strings = Annotated[tuple[str, ...], BeforeValidator(_null_items(str))]
Uint32s = Annotated[tuple[Uint32, ...], BeforeValidator(_null_items(int))]
StrMap = Annotated[dict[str, str], BeforeValidator(_null_values(""))]
Uint32Map = Annotated[dict[str, Uint32], BeforeValidator(_null_values(0))]


class ProtoModel(BaseModel):
    """A proto message read from JSON: camelCase or proto names, unknown keys kept."""

    model_config = ConfigDict(
        extra="allow",
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        """jsonpb treats a JSON null field as unset; so do we."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


def present(model: BaseModel, *names: str) -> list[str]:
    """Names (camelCase) of the given fields that are present (not None)."""
    return [to_camel(n) for n in names if getattr(model, n) is not None]
