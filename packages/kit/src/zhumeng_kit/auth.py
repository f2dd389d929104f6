"""JWT bearer authentication (HS256) and role checks, plus the token-minting command."""
# No `from __future__ import annotations`: FastAPI must resolve `checked`'s dependency at
# definition time.

import argparse
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

import jwt
from fastapi import Depends, Request

from .problems import Forbidden, Unauthorized
from .settings import ServiceSettings

Role = Literal["resident", "volunteer", "team_lead", "coordinator", "agency", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
STAFF: tuple[str, ...] = ("coordinator", "admin")


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str]
    township: str | None = None  # a township coordinator's scope; None = county-wide

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def is_staff(self) -> bool:
        return self.has(*STAFF)


def mint_token(
    secret: str,
    subject: str,
    roles: list[str],
    township: str | None = None,
    ttl_s: int = 12 * 3600,
    issuer: str = "zhumeng",
) -> str:
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles: {sorted(unknown)}")
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "roles": roles,
        "iss": issuer,
        "iat": now,
        "exp": now + ttl_s,
    }
    if township:
        claims["township"] = township
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_token(token: str, secret: str, issuer: str = "zhumeng") -> Principal:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            issuer=issuer,
            options={"require": ["sub", "exp", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("the token has expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"invalid token: {exc}") from exc
    roles = claims.get("roles")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthorized("invalid token: roles must be a list of strings")
    return Principal(str(claims["sub"]), frozenset(roles), claims.get("township"))


def principal_dependency(
    settings: ServiceSettings,
) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
    async def current_principal(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("send a bearer token in the Authorization header")
        return verify_token(token.strip(), settings.jwt_secret, settings.jwt_issuer)

    return current_principal


def require_roles(
    current: Callable[[Request], Coroutine[Any, Any, Principal]], *roles: str
) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def checked(principal: Annotated[Principal, Depends(current)]) -> Principal:
        if not principal.has(*roles, "admin"):
            raise Forbidden(f"this needs one of the roles: {', '.join(roles)}")
        return principal

    return checked


def token_cli() -> None:
    parser = argparse.ArgumentParser(description="Mint a development JWT for Zhumeng's APIs.")
    parser.add_argument("subject", help="the user id, e.g. res_demo_1 or vol_0001")
    parser.add_argument("--role", action="append", choices=ROLES, required=True)
    parser.add_argument("--township", default=None)
    parser.add_argument("--ttl", type=int, default=12 * 3600, help="seconds")
    args = parser.parse_args()
    settings = ServiceSettings()
    print(
        mint_token(
            settings.jwt_secret,
            args.subject,
            args.role,
            args.township,
            args.ttl,
            settings.jwt_issuer,
        )
    )
