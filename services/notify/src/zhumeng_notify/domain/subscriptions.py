"""Agency webhook subscriptions to the public feeds (ADR 0014). Pure: no I/O.

A subscription names a URL, the public event types and the townships it wants (empty: all).
Every public event that matches gets one delivery per subscription, keyed by (event id,
subscription[, replay]): a redelivered event never makes a second delivery.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from zhumeng_contracts.topics import TOPICS

PUBLIC_TOPICS: tuple[str, ...] = tuple(t.name for t in TOPICS if t.structured)
PUBLIC_EVENT_TYPES: tuple[str, ...] = tuple(
    e.TYPE for t in TOPICS if t.structured for e in t.events
)
DeliveryStatus = Literal["pending", "delivered", "dead_lettered", "cancelled"]
FINAL: frozenset[str] = frozenset({"delivered", "dead_lettered", "cancelled"})


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=2000, description="http(s) URL that receives POSTs")
    event_types: list[str] = Field(
        default_factory=list, max_length=20, description="public event types; empty: all"
    )
    townships: list[str] = Field(
        default_factory=list, max_length=200, description="township ids; empty: all"
    )
    secret: str | None = Field(
        default=None,
        min_length=24,
        max_length=200,
        description="signing secret (write-only); omitted: one is generated and returned once",
    )
    description: str = Field(default="", max_length=200)

    @field_validator("event_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(PUBLIC_EVENT_TYPES))
        if unknown:
            raise ValueError(f"not public event types: {unknown}; choose from {PUBLIC_EVENT_TYPES}")
        return sorted(set(value))

    @field_validator("townships")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return sorted(set(value))


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime = Field(description="RFC 3339; re-deliver matching events from then on")


class UrlNotAllowed(ValueError):
    pass


def check_url(url: str, allow_loopback: bool) -> str:
    """Only http(s) to a host; loopback, private and link-local literal addresses only when
    allowed (development). A hostname is not resolved here: production puts the notify
    egress behind a proxy that refuses internal networks (ADR 0014)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlNotAllowed("the URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise UrlNotAllowed("no credentials in the URL: the signature authenticates us")
    host = parts.hostname
    internal = host == "localhost" or host.endswith(".localhost")
    try:
        ip = ipaddress.ip_address(host)
        internal = internal or ip.is_loopback or ip.is_private or ip.is_link_local
        internal = internal or ip.is_unspecified or ip.is_multicast or ip.is_reserved
    except ValueError:
        pass  # a hostname
    if internal and not allow_loopback:
        raise UrlNotAllowed("internal addresses are not allowed for webhooks here")
    return url


@dataclass(frozen=True)
class Subscription:
    id: str
    owner: str
    url: str
    event_types: tuple[str, ...]
    townships: tuple[str, ...]
    secret: str
    created_at: datetime
    description: str = ""

    def wants(self, event_type: str, township_id: str | None) -> bool:
        if self.event_types and event_type not in self.event_types:
            return False
        return not self.townships or township_id in self.townships

    def __repr__(self) -> str:  # never print the secret
        return f"Subscription(id={self.id!r}, owner={self.owner!r}, url={self.url!r})"


def delivery_id(event_id: str, subscription_id: str, replay_id: str | None = None) -> str:
    """One event, one subscription (one replay) -> at most one successful delivery."""
    base = f"{event_id}|{subscription_id}"
    return f"{base}|{replay_id}" if replay_id else base
