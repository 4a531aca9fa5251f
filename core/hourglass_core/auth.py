"""Who a caller is and what it may do: bearer JWTs that carry permissions.

A token's `permissions` claim lists grants, as Temporal's default claim mapper reads them:
"<namespace>:read", "<namespace>:write", "<namespace>:admin" (each role includes the ones
before it; "*" stands for every namespace) and "cluster:worker" for the workers' stream. A
worker token's subject names the worker it is (see `names_worker`).
Tokens are signed with a shared secret (HS256) or a private key (RS256, ES256) and verified
with the secret, the public key or a JWKS file. A token must carry `sub` and `exp`.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

WORKER_GRANT = "cluster:worker"
ALL_NAMESPACES = "*"
FLEET = "*"  # ends a worker name that stands for every worker id it prefixes
LEEWAY_S = 30  # clock skew between the minting machine and the coordinators


class Role(enum.IntEnum):
    READ = 1
    WRITE = 2
    ADMIN = 3


_ROLES = {role.name.lower(): role for role in Role}


class Unauthenticated(Exception):
    """The caller cannot be identified: no token, or one that is malformed, expired or not
    signed by a trusted key. The message says which, never the token."""


@dataclass(frozen=True, slots=True)
class Caller:
    subject: str
    grants: frozenset[str] = field(default_factory=frozenset)

    def may(self, namespace: str, role: Role) -> bool:
        """Whether a grant gives at least `role` in `namespace` ("*": every namespace; asking
        for "*" needs a grant for every namespace)."""
        for grant in self.grants:
            scope, _, name = grant.rpartition(":")
            granted = _ROLES.get(name)
            if granted is not None and granted >= role and scope in (namespace, ALL_NAMESPACES):
                return True
        return False

    @property
    def is_worker(self) -> bool:
        return WORKER_GRANT in self.grants


def names_worker(name: str, worker_id: str) -> bool:
    """Whether a credential that names `name` (a token's subject, a certificate's name) may
    register as worker `worker_id`: `name` is that id, or a prefix ending in "*" shared by a
    fleet of workers ("etl-*": every id that starts "etl-"; "*" alone: any id)."""
    if name.endswith(FLEET):
        return worker_id.startswith(name[: -len(FLEET)])
    return worker_id == name


def grant(namespace: str, role: Role) -> str:
    return f"{namespace}:{role.name.lower()}"


def _algorithm_of(key: Any) -> str:
    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        return "RS256"
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        return "ES256"
    raise ValueError(f"unsupported key type {type(key).__name__}: use an RSA or P-256 EC key")


@dataclass(frozen=True)
class TrustedKeys:
    """What verifies tokens: (algorithm, key) pairs, by key id where a JWKS names them."""

    keys: tuple[tuple[str, Any], ...] = ()
    by_id: dict[str, tuple[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, secret_file: str = "", public_key_file: str = "", jwks_file: str = "") -> TrustedKeys | None:
        """None when no file is given (authentication off)."""
        keys: list[tuple[str, Any]] = []
        by_id: dict[str, tuple[str, Any]] = {}
        if secret_file:
            keys.append(("HS256", read_secret(secret_file)))
        if public_key_file:
            public = load_pem_public_key(Path(public_key_file).read_bytes())
            keys.append((_algorithm_of(public), public))
        if jwks_file:
            for jwk in jwt.PyJWKSet.from_json(Path(jwks_file).read_text()).keys:
                pair = (jwk.algorithm_name, jwk.key)
                keys.append(pair)
                if jwk.key_id:
                    by_id[jwk.key_id] = pair
        return cls(tuple(keys), by_id) if keys else None


def read_secret(path: str) -> bytes:
    secret = Path(path).read_bytes().strip()
    if len(secret) < 32:
        raise ValueError(f"the HS256 secret in {path} is shorter than 32 bytes")
    return secret


# Tokens verified lately, by their exact text: a caller sends the same token with every call,
# and checking its signature again costs ~50 us of a coordinator's CPU a call, a cache hit ~1.
VERIFIED_CACHE_SIZE = 4096


class Verifier:
    def __init__(self, trusted: TrustedKeys, clock: Callable[[], float] = time.time) -> None:
        self._trusted = trusted
        self._clock = clock
        self._verified_tokens: dict[str, tuple[Caller, float]] = {}  # token -> (caller, valid until)

    def caller(self, authorization: str | None) -> Caller:
        """The caller an `authorization` metadata value ("Bearer <jwt>") names."""
        if not authorization:
            raise Unauthenticated("no bearer token in the authorization metadata")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("the authorization metadata is not 'Bearer <token>'")
        known = self._verified_tokens.get(token)
        if known is not None and self._clock() < known[1]:
            return known[0]
        claims = self._verified(token)
        permissions = claims.get("permissions", [])
        if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
            raise Unauthenticated("the token's permissions claim is not a list of strings")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated("the token has no subject (sub)")
        caller = Caller(subject, frozenset(permissions))
        if len(self._verified_tokens) >= VERIFIED_CACHE_SIZE:
            self._verified_tokens.clear()  # rarely: as many distinct live tokens as callers
        # Until it expires as jwt.decode judges it (with the leeway); "exp" is required.
        self._verified_tokens[token] = (caller, float(claims["exp"]) + LEEWAY_S)
        return caller

    def _verified(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the token is not a JWT") from None
        kid = header.get("kid")
        candidates = [self._trusted.by_id[kid]] if kid in self._trusted.by_id else list(self._trusted.keys)
        candidates = [(alg, key) for alg, key in candidates if alg == header.get("alg")]
        if not candidates:
            raise Unauthenticated(f"the token is signed with {header.get('alg')!r}, which no trusted key verifies")
        error: jwt.PyJWTError | None = None
        for algorithm, key in candidates:
            try:
                return jwt.decode(token, key, algorithms=[algorithm], leeway=LEEWAY_S,
                                  options={"require": ["exp", "sub"], "verify_aud": False})  # fmt: skip
            except jwt.ExpiredSignatureError:
                raise Unauthenticated("the token has expired") from None
            except jwt.InvalidSignatureError as bad:
                error = bad
            except jwt.PyJWTError as bad:
                raise Unauthenticated(f"the token is not valid: {bad}") from None
        raise Unauthenticated("the token's signature does not verify with any trusted key") from error


def mint(
    signing_key_file: str, subject: str, permissions: Sequence[str], ttl: timedelta, now: datetime,
    *, secret: bool,
) -> str:  # fmt: skip
    """A token for `subject` with `permissions`, valid for `ttl` from `now`, signed with the
    HS256 secret (`secret`) or the RSA / EC private key in `signing_key_file`."""
    if secret:
        key: Any = read_secret(signing_key_file)
        algorithm = "HS256"
    else:
        key = load_pem_private_key(Path(signing_key_file).read_bytes(), password=None)
        algorithm = _algorithm_of(key)
    claims = {"sub": subject, "permissions": list(permissions), "iat": now, "exp": now + ttl}
    return jwt.encode(claims, key, algorithm=algorithm)

