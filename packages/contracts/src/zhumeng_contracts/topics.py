"""The topic registry: every topic declared once, as reviewed data (DESIGN §2).

Scripts create topics from this declaration; services look names up here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .events import (
    AssignmentCancelled,
    AssignmentCompleted,
    CheckedIn,
    ClaimOpened,
    ContactRecord,
    Event,
    NotificationDelivered,
    OfferDeclined,
    OfferExpired,
    OfferMade,
    PlaceRecord,
    PublicAssignmentCancelled,
    PublicAssignmentCompleted,
    PublicAssignmentMade,
    PublicRequestPosted,
    PublicRequestStatusChanged,
    RequestCancelled,
    RequestCompleted,
    RequesterContact,
    RequestEscalated,
    RequestPosted,
    RequestRated,
    RequestReviewed,
    RequestUnfulfilled,
    RequestUnmatched,
    ReviewRequired,
    ServiceTypeRecord,
    TeamClaimed,
    TeamRecord,
    VolunteerAssigned,
    VolunteerRecord,
)

WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    partitions: int
    compacted: bool
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    events: tuple[type[Event], ...]
    pii: bool = False
    # internal topics: CloudEvents binary mode (headers); public feeds: structured JSON values
    structured: bool = False
    retention_ms: int = WEEK_MS
    description: str = ""
    extra_config: dict[str, str] = field(default_factory=dict)

    @property
    def dlq(self) -> str:
        return dlq_name(self.name)

    def config(self) -> dict[str, str]:
        cfg = {"cleanup.policy": "compact" if self.compacted else "delete"}
        if not self.compacted:
            cfg["retention.ms"] = str(self.retention_ms)
        else:
            # compact promptly so a rebuilding read model replays little history
            cfg["min.cleanable.dirty.ratio"] = "0.1"
            cfg["segment.ms"] = str(3600 * 1000)
        cfg.update(self.extra_config)
        return cfg


def dlq_name(topic: str) -> str:
    return f"{topic}.dlq"


def _catalog(
    name: str, event: type[Event], consumers: tuple[str, ...], pii: bool = False
) -> TopicSpec:
    return TopicSpec(
        name=name,
        key="entity id",
        partitions=3,
        compacted=True,
        producers=("catalog",),
        consumers=consumers,
        events=(event,),
        pii=pii,
        description=f"current state of every {event.__name__.removesuffix('Record').lower()}",
    )


def _public(name: str, producer: str, *events: type[Event]) -> TopicSpec:
    """A feed for other agencies: no personal data, CloudEvents structured JSON, kept 4 weeks
    so a subscription can be replayed from a point in time."""
    return TopicSpec(
        name=name,
        key="request id",
        partitions=3,
        compacted=False,
        producers=(producer,),
        consumers=("notify", "agencies"),
        events=events,
        structured=True,
        retention_ms=4 * WEEK_MS,
        description=f"{name.split('.')[1]} without personal data, for other agencies",
    )


TOPICS: tuple[TopicSpec, ...] = (
    _catalog("catalog.service-types.v1", ServiceTypeRecord, ("requests", "matching", "notify")),
    _catalog("catalog.places.v1", PlaceRecord, ("requests",)),
    _catalog("catalog.volunteers.v1", VolunteerRecord, ("matching",)),
    _catalog("catalog.teams.v1", TeamRecord, ("matching",)),
    _catalog("catalog.contacts.v1", ContactRecord, ("notify",), pii=True),
    TopicSpec(
        name="requests.events.v1",
        key="request id",
        partitions=6,
        compacted=False,
        producers=("requests",),
        consumers=("matching", "notify"),
        events=(RequestPosted, RequestCancelled, RequestRated),
        description="the Request aggregate's events",
    ),
    TopicSpec(
        name="requests.contacts.v1",
        key="request id",
        partitions=3,
        compacted=True,
        producers=("requests",),
        consumers=("notify",),
        events=(RequesterContact,),
        pii=True,
        description="how to reach each request's requester (notify only)",
    ),
    TopicSpec(
        name="matching.events.v1",
        key="request id",
        partitions=6,
        compacted=False,
        producers=("matching",),
        # matching reads its own events too: capacity, volunteer stats, the public feed
        consumers=("requests", "notify", "matching"),
        events=(
            VolunteerAssigned,
            RequestUnmatched,
            OfferMade,
            OfferDeclined,
            OfferExpired,
            ClaimOpened,
            CheckedIn,
            AssignmentCompleted,
            AssignmentCancelled,
            RequestCompleted,
            RequestUnfulfilled,
            ReviewRequired,
            RequestReviewed,
            RequestEscalated,
            TeamClaimed,
        ),
        description="matching decisions",
    ),
    _public("public.requests.v1", "requests", PublicRequestPosted, PublicRequestStatusChanged),
    _public(
        "public.assignments.v1",
        "matching",
        PublicAssignmentMade,
        PublicAssignmentCompleted,
        PublicAssignmentCancelled,
    ),
    TopicSpec(
        name="notify.events.v1",
        key="delivery id",
        partitions=3,
        compacted=False,
        producers=("notify",),
        consumers=("dashboards",),
        events=(NotificationDelivered,),
        description="delivery outcomes, no addresses or bodies",
    ),
)

TOPICS_BY_NAME: dict[str, TopicSpec] = {t.name: t for t in TOPICS}


def topic(name: str) -> TopicSpec:
    return TOPICS_BY_NAME[name]


def all_topic_names(with_dlq: bool = True) -> list[str]:
    names = [t.name for t in TOPICS]
    if with_dlq:
        names += [t.dlq for t in TOPICS]
    return names


def _retention(spec: TopicSpec) -> str:
    if spec.compacted:
        return "compacted"
    return f"{spec.retention_ms // (24 * 3600 * 1000)} days"


def markdown_table() -> str:
    """The topic table of the README, from this registry (a contract test keeps them equal)."""
    rows = [
        "| topic | retention | partitions | key | producer | consumers | event types "
        "| personal data | encoding |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in TOPICS:
        types = ", ".join(f"`{e.TYPE}`" for e in t.events)
        rows.append(
            f"| `{t.name}` | {_retention(t)} | {t.partitions} | {t.key} | "
            f"{', '.join(t.producers)} | {', '.join(t.consumers) or '–'} | {types} | "
            f"{'yes' if t.pii else 'no'} | {'structured' if t.structured else 'binary'} |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
