"""Request hash keys (header, cookie, source IP, query parameter) and cookie generation."""

from .cookies import format_set_cookie, generate_cookie_value
from .parse import cookie_value, query_value
from .policy import (
    AddCookie,
    CookieKey,
    HashKeySpec,
    HeaderKey,
    QueryKey,
    RequestView,
    SourceIpKey,
    combine,
    compute_hash,
)

__all__ = [
    "AddCookie",
    "CookieKey",
    "HashKeySpec",
    "HeaderKey",
    "QueryKey",
    "RequestView",
    "SourceIpKey",
    "combine",
    "compute_hash",
    "cookie_value",
    "format_set_cookie",
    "generate_cookie_value",
    "query_value",
]
