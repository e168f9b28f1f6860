"""Generated affinity cookies: value and Set-Cookie text exactly as Envoy's router writes them."""

import pytest

from tether.hashing import CookieKey, format_set_cookie, generate_cookie_value


def test_cookie_value_from_connection_addresses():
    assert generate_cookie_value("10.1.2.3:54321", "10.0.0.5:8080") == "d9df64085857d8db"
    v6 = generate_cookie_value("[2001:db8::1]:40000", "[2001:db8::2]:80")
    assert len(v6) == 16 and v6 == v6.lower()
    assert v6 != generate_cookie_value("[2001:db8::1]:40001", "[2001:db8::2]:80")


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("foo", "v", "", 1337), 'foo="v"; Max-Age=1337; HttpOnly'),
        (("foo", "v", "/path", 1337), 'foo="v"; Max-Age=1337; Path=/path; HttpOnly'),
        (("choco", "v", "", 15), 'choco="v"; Max-Age=15; HttpOnly'),
        (("s", "v", "/", 0), 's="v"; Path=/; HttpOnly'),  # ttl 0s: session cookie
    ],
)
def test_set_cookie_format(args, text):
    assert format_set_cookie(*args) == text


def test_attributes_come_before_httponly():
    text = format_set_cookie("s", "v", "/", 60, (("SameSite", "Lax"), ("Secure", "")))
    assert text == 's="v"; Max-Age=60; Path=/; SameSite=Lax; Secure; HttpOnly'


def test_cookie_key_set_cookie():
    key = CookieKey("sticky", path="/app", ttl_seconds=0, attributes=(("Secure", ""),))
    assert (
        key.set_cookie("d9df64085857d8db")
        == 'sticky="d9df64085857d8db"; Path=/app; Secure; HttpOnly'
    )
