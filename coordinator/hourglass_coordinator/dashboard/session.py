"""Who is looking at the dashboard and what they may do: the API's own checks, from a cookie.

The login form takes a bearer token (as `hourglass token create` mints it); the dashboard keeps
it in an HttpOnly, SameSite=Strict cookie (Secure over TLS) and verifies it on every request
with the coordinator's Verifier. Each page and action names the RPC it stands for, and is
allowed exactly when that RPC would be: the role and namespaces come from access.NEEDS and the
verdict from access.denial, with the request message the RPC would carry. Without token
authentication (hourglass dev) everyone may do everything, as on the API.

Actions are POSTs carrying a CSRF token: a random value kept in a SameSite=Strict cookie and
repeated in the form (double submit). Another site can neither read the cookie nor send it.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from hourglass_coordinator.access import NEEDS, denial
from hourglass_core.auth import ALL_NAMESPACES, Caller, Unauthenticated, Verifier

TOKEN_COOKIE = "hg_token"
CSRF_COOKIE = "hg_csrf"
CSRF_FIELD = "csrf"
ANONYMOUS = Caller("anonymous (no token authentication)", frozenset({f"{ALL_NAMESPACES}:admin"}))


class LoginRequired(Exception):
    """No token, or one that no longer verifies: the message says which (never the token)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """What a caller lacks for an RPC: the sentence access.denial wrote, and the grant it needs."""

    why: str
    needs: str


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(cookie: str | None, submitted: str | None) -> bool:
    """Whether a form's CSRF field repeats the cookie's value (both present, compared in
    constant time)."""
    if not cookie or not submitted:
        return False
    return hmac.compare_digest(cookie.encode(), submitted.encode())


def refusal(caller: Caller, rpc: str, request: Any) -> Refusal | None:
    """Why `caller` may not make `rpc` (a JobService method) with `request`, as the API's
    interceptor judges it; None if it may. An RPC missing from the table is refused."""
    need = NEEDS.get(rpc)
    if need is None:
        return Refusal(f"{rpc} is not open to callers", "")
    role, namespaces = need
    names = namespaces(request)
    why = denial(caller, role, names)
    if why is None:
        return None
    missing = next(n for n in names if not caller.may(n, role))
    return Refusal(why, f"{missing}:{role.name.lower()}")


class Sessions:
    """Callers from the token cookie; `verifier` None: no authentication (everyone is admin)."""

    def __init__(self, verifier: Verifier | None) -> None:
        self._verifier = verifier

    @property
    def required(self) -> bool:
        return self._verifier is not None

    def caller(self, token: str | None) -> Caller:
        """Raises LoginRequired when a token is needed and missing or not valid."""
        if self._verifier is None:
            return ANONYMOUS
        if not token:
            raise LoginRequired("log in with a token")
        try:
            return self._verifier.caller(f"Bearer {token}")
        except Unauthenticated as error:
            raise LoginRequired(str(error)) from None
