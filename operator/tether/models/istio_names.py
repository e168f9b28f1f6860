"""Istio's name checks (DNS labels, wildcard hosts, label keys and values) and Go ``%q``.

These reproduce ``pkg/config/labels`` and the DNS helpers of ``pkg/config/validation/agent`` so
that tether accepts and rejects exactly the hosts, subset names and labels Istio does, with the
same messages. Invariant: every function returns ``None`` for what Istio accepts and Istio's
exact error text otherwise.
"""

from __future__ import annotations

import re

DNS1123_LABEL_MAX = 63
_DNS1123_LABEL = "[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?"
_WILDCARD_PREFIX = rf"(\*|(\*|\*-)?{_DNS1123_LABEL})"
_QUALIFIED_NAME = "(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_DNS_NAME_PREFIX = rf"{_DNS1123_LABEL}(?:\.{_DNS1123_LABEL})*/"
_DNS_NAME_PREFIX_MAX = 253

_TAG = re.compile(rf"({_DNS_NAME_PREFIX})?({_QUALIFIED_NAME})")
_LABEL_VALUE = re.compile(rf"({_QUALIFIED_NAME})?")
_DNS1123 = re.compile(_DNS1123_LABEL)
_WILDCARD = re.compile(_WILDCARD_PREFIX)
_GO_INT = re.compile(r"[+-]?[0-9]+")
_ESCAPES = {
    "\a": r"\a",
    "\b": r"\b",
    "\f": r"\f",
    "\n": r"\n",
    "\r": r"\r",
    "\t": r"\t",
    "\v": r"\v",
}


def go_quote(s: str) -> str:
    """Go ``strconv.Quote`` (what ``%q`` prints) for a valid UTF-8 string."""
    out = ['"']
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _glen(s: str) -> int:
    """Go's len(): bytes of the UTF-8 encoding."""
    return len(s.encode("utf-8"))


def is_dns1123_label(value: str) -> bool:
    """Istio ``labels.IsDNS1123Label``: upper case allowed, at most 63 bytes."""
    return _glen(value) <= DNS1123_LABEL_MAX and _DNS1123.fullmatch(value) is not None


def is_wildcard_dns1123_label(value: str) -> bool:
    """Istio ``labels.IsWildcardDNS1123Label``: ``*``, ``*foo``, ``*-foo`` or a DNS-1123 label."""
    return _glen(value) <= DNS1123_LABEL_MAX and _WILDCARD.fullmatch(value) is not None


def _go_atoi_ok(s: str) -> bool:
    """True when Go ``strconv.Atoi`` succeeds (sign allowed, must fit int64)."""
    return _GO_INT.fullmatch(s) is not None and -(1 << 63) <= int(s) < (1 << 63)


def validate_dns1123_labels(domain: str) -> str | None:
    """Istio ``agent.ValidateDNS1123Labels`` (a trailing dot is allowed)."""
    parts = domain.split(".")
    tld = parts[-1]
    if _go_atoi_ok(tld):
        return (
            f"domain name {go_quote(domain)} invalid "
            f"(top level domain {go_quote(tld)} cannot be all-numeric)"
        )
    for i, label in enumerate(parts):
        if i == len(parts) - 1 and label == "":
            return None
        if not is_dns1123_label(label):
            return f"domain name {go_quote(domain)} invalid (label {go_quote(label)} invalid)"
    return None


def validate_fqdn(fqdn: str) -> str | None:
    """Istio ``agent.ValidateFQDN``: length and emptiness first, then every label."""
    if _glen(fqdn) > 255:
        return f"domain name {go_quote(fqdn)} too long (max 255)"
    if not fqdn:
        return "empty domain name not allowed"
    return validate_dns1123_labels(fqdn)


def validate_wildcard_domain(domain: str) -> str | None:
    """Istio ``agent.ValidateWildcardDomain``: the DestinationRule ``host`` check."""
    if _glen(domain) > 255:
        return f"domain name {go_quote(domain)} too long (max 255)"
    if not domain:
        return "empty domain name not allowed"
    first, dot, rest = domain.partition(".")
    if not is_wildcard_dns1123_label(first):
        return f"domain name {go_quote(domain)} invalid (label {go_quote(first)} invalid)"
    if dot:
        # Istio validates the remainder on its own, so messages quote the remainder only.
        return validate_dns1123_labels(rest)
    return None


def validate_tag_key(key: str) -> str | None:
    """Istio ``labels.validateTagKey``: a Kubernetes qualified label name."""
    match = _TAG.fullmatch(key)
    if match is None:
        return f"invalid tag key: {go_quote(key)}"
    prefix, name = match.group(1) or "", match.group(2)
    if prefix and _glen(prefix) - 1 > _DNS_NAME_PREFIX_MAX:
        return f"invalid tag key: {go_quote(key)} (DNS prefix is too long)"
    if _glen(name) > DNS1123_LABEL_MAX:
        return f"invalid tag key: {go_quote(key)} (name is too long)"
    return None


def validate_labels(labels: dict[str, str] | None) -> list[str]:
    """Istio ``labels.Instance.Validate``: key errors and value errors, in map order."""
    errors: list[str] = []
    for key, value in (labels or {}).items():
        key_error = validate_tag_key(key)
        if key_error:
            errors.append(key_error)
        if _LABEL_VALUE.fullmatch(value) is None:
            errors.append(f"invalid tag value: {go_quote(value)}")
    return errors
