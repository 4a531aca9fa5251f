"""Credentials in the store and coordination URLs: a user and password in the URL
(`scheme://user:password@host/...`) or the password in a file (`?password_file=/path`), and
TLS files for the connection. Pure parsing, plus reading the files they name.

A URL that may carry a password is shown only through `redact`: logs and error messages
name the user and the host, never the password.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "***"


def redact(url: str) -> str:
    """`url` with the password of its user part replaced by ***; an unparsable URL whole
    (it cannot carry a readable password then)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{REDACTED}@{hosts}"))


@dataclass(frozen=True, slots=True)
class Login:
    username: str
    password: str = field(repr=False)  # so a logged Login shows no secret


def login(netloc: str, options: dict[str, str], what: str) -> tuple[Login | None, str]:
    """The user and password of a URL's `netloc` (the password from `options["password_file"]`
    when that is given, which wins), and the netloc without them. Raises ValueError naming
    `what` (e.g. "store URL") when a password has no user or its file cannot be read."""
    userinfo, at, hosts = netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    user, password = unquote(user), unquote(password)
    if "password_file" in options:
        password = read_secret(options["password_file"], f"{what}: password_file")
    if password and not user:
        raise ValueError(f"{what}: a password needs a user name (scheme://user:password@host or ?password_file= with user@host)")
    return (Login(user, password) if user else None), hosts if at else netloc


def read_secret(path: str, what: str) -> str:
    """The text of a secret file without its trailing newline; ValueError naming `what` (never
    the content) if it cannot be read or is empty."""
    try:
        text = Path(path).read_text().rstrip("\r\n")
    except OSError as exc:
        raise ValueError(f"{what}: cannot read {path!r}: {exc.strerror}") from None
    if not text:
        raise ValueError(f"{what}: {path!r} is empty")
    return text


def tls_context(ca_file: str, cert_file: str = "", key_file: str = "", *, check_hostname: bool = False) -> ssl.SSLContext:
    """A client TLS context that verifies the server against `ca_file` (the system's roots when
    empty) and presents a client certificate when given. Hostname checking is off by default:
    a Cassandra ring is reached through whichever node address gossip reports, so the
    certificate is trusted for its CA, as the driver's own TLS guide does."""
    context = ssl.create_default_context(cafile=ca_file or None)
    context.check_hostname = check_hostname
    if bool(cert_file) != bool(key_file):
        raise ValueError("a client certificate needs both its certificate and key file")
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context
