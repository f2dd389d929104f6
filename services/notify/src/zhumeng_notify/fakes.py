"""In-memory stand-ins for notify's ports, for unit tests (the real ones are the adapters and
`zhumeng_kit.timers.Scheduler`): one copy, shared by every test of the use case."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from zhumeng_contracts.events import NotificationDelivered
from zhumeng_kit.mongo import Doc
from zhumeng_kit.timers import ScheduleResult, Timer, TimerHandler, TimerState

from .app.delivery import RESUME, DeliveryPolicy
from .app.notify import NotifyOnEvent
from .app.ports import Channel, Completion, Directory, NewDelivery, SendRejected
from .domain.model import FINAL, Claim, Locale, Message, Receipt, Recipient
from .domain.preferences import Preferences
from .domain.recipients import Coordinator

EPOCH = datetime(2025, 6, 1, tzinfo=UTC)


class Clock:
    """A clock the test moves by setting `now`."""

    def __init__(self, now: datetime = EPOCH) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class FakeRepo:
    """The DeliveryRepository port in memory, with the store's conditions."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.events: list[NotificationDelivered] = []

    async def claim_many(
        self, items: list[NewDelivery], now: datetime, lease: timedelta
    ) -> list[Claim]:
        return [self._claim(item, now, lease) for item in items]

    def _claim(self, item: NewDelivery, now: datetime, lease: timedelta) -> Claim:
        d = item.delivery
        doc = self.docs.get(d.id)
        if doc is None:
            deferred = item.due_at is not None
            self.docs[d.id] = {
                "_id": d.id,
                "delivery": d,
                "recipient_id": d.recipient_id,
                "role": d.role,
                "channel": d.channel,
                "locale": d.locale,
                "subject": d.subject,
                "body": d.body,
                "short": d.short,
                "urgent": d.urgent,
                "cause_event_id": d.cause.event_id,
                "cause_event_type": d.cause.event_type,
                "request_id": d.cause.request_id,
                "status": "deferred" if deferred else "pending",
                "attempts": 0 if deferred else 1,
                "lease_until": item.due_at if deferred else now + lease,
                "log": [],
            }
            if item.deferred_event:
                self.events.append(item.deferred_event)
            if deferred:
                return Claim("deferred", 0, "deferred", item.due_at)
            return Claim("send", 1, "pending", now + lease)
        if doc["status"] == "pending" and doc["lease_until"] <= now:
            doc["attempts"] += 1
            doc["lease_until"] = now + lease
            return Claim("send", doc["attempts"], "pending", now + lease)
        if doc["status"] in FINAL:
            return Claim("done", doc["attempts"], doc["status"])
        return Claim("busy", doc["attempts"], doc["status"], doc["lease_until"])

    async def complete_many(self, items: list[Completion]) -> int:
        held = 0
        for c in items:
            doc = self.docs[c.delivery_id]
            if doc["status"] != "pending" or doc["attempts"] != c.attempt:
                continue
            doc.update(status=c.status, error=c.error, receipt=c.receipt, lease_until=None)
            doc["log"].append((c.attempt, c.status))
            self.events.append(c.event)
            held += 1
        return held

    async def retry_later(
        self, delivery_id: str, attempt: int, now: datetime, retry_at: datetime, error: str
    ) -> bool:
        doc = self.docs[delivery_id]
        if doc["status"] != "pending" or doc["attempts"] != attempt:
            return False
        doc.update(lease_until=retry_at, error=error)
        doc["log"].append((attempt, "retry"))
        return True

    async def take(self, delivery_id: str, now: datetime, lease: timedelta) -> Doc | None:
        doc = self.docs.get(delivery_id)
        if doc is None or doc["status"] not in ("pending", "deferred"):
            return None
        if doc["lease_until"] > now:
            return None
        doc.update(status="pending", lease_until=now + lease)
        doc["attempts"] += 1
        return dict(doc)

    async def replay(self, delivery_id: str, now: datetime, budget: int) -> Doc | None:
        doc = self.docs.get(delivery_id)
        if doc is None or doc["status"] != "dead_lettered":
            return None
        doc.update(status="pending", lease_until=now, last_attempt=doc["attempts"] + budget)
        return dict(doc)

    async def state(self, delivery_id: str) -> Doc | None:
        return self.docs.get(delivery_id)


class FakeTimers:
    """Durable timers in memory, as `zhumeng_kit.timers.Scheduler` keeps them: one per
    (kind, key), rescheduled while pending, final once fired or cancelled (a tombstone that
    `schedule` does not revive). `fire_due` runs the registered handlers of the timers due
    by the clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.timers: dict[str, dict[str, Any]] = {}
        self.handlers: dict[str, TimerHandler] = {}
        self.fired: list[str] = []

    def register(self, kind: str, handler: TimerHandler) -> None:
        self.handlers[kind] = handler

    async def schedule(
        self, kind: str, key: str, due_at: datetime, payload: Doc | None = None
    ) -> ScheduleResult:
        tid = f"{kind}:{key}"
        found = self.timers.get(tid)
        if found is not None and found["state"] != "pending":
            state: ScheduleResult = found["state"]
            return state
        timer = {"kind": kind, "key": key, "due": due_at, "payload": dict(payload or {})}
        if found is None:
            self.timers[tid] = {**timer, "state": "pending"}
            return "scheduled"
        if all(found[k] == v for k, v in timer.items()):
            return "unchanged"
        found.update(timer)
        return "rescheduled"

    async def cancel(self, kind: str, key: str) -> TimerState | None:
        found = self.timers.get(f"{kind}:{key}")
        if found is None:
            return None
        before: TimerState = found["state"]
        if before in ("pending", "leased"):
            found["state"] = "cancelled"
        return before

    def pending(self) -> list[tuple[str, datetime]]:
        return sorted((t["key"], t["due"]) for t in self.timers.values() if t["state"] == "pending")

    async def fire_due(self) -> int:
        """Run each pending timer due by now once (not those its handlers schedule); a
        handler's failure leaves its timer pending (the scheduler would retry it)."""
        n = 0
        for tid, t in list(self.timers.items()):
            if t["state"] != "pending" or t["due"] > self.clock():
                continue
            t["state"] = "leased"
            try:
                await self.handlers[t["kind"]](
                    Timer(tid, t["kind"], t["key"], t["due"], t["payload"])
                )
            except BaseException:
                t["state"] = "pending"
                raise
            t["state"] = "fired"
            self.fired.append(tid)
            n += 1
        return n


class FakeChannel:
    """Records what it sends; fails `fail_times` times first, or rejects everything."""

    def __init__(self, name: str, fail_times: int = 0, reject: bool = False) -> None:
        self.name = name
        self.sent: list[Message] = []
        self.fail_times = fail_times
        self.reject = reject

    async def send(self, message: Message) -> Receipt:
        if self.reject:
            raise SendRejected("invalid number")
        if self.fail_times:
            self.fail_times -= 1
            raise ConnectionRefusedError(f"relay down while sending to {message.address}")
        self.sent.append(message)
        return Receipt(self.name, f"{self.name}:{len(self.sent)}", EPOCH)

    def to(self, recipient_id: str) -> list[Message]:
        return [m for m in self.sent if m.recipient.id == recipient_id]


class FakeDirectory:
    """The Directory port: requesters by request id, volunteers by id, coordinators by
    township (None: the county centre), service names by id and locale. Records which
    townships' coordinators were asked for."""

    def __init__(
        self,
        requesters: Mapping[str, Recipient] | None = None,
        volunteers: Mapping[str, Recipient] | None = None,
        coordinators: Sequence[Coordinator] = (),
        services: Mapping[str, Mapping[Locale, str]] | None = None,
    ) -> None:
        self.requesters = dict(requesters or {})
        self.volunteers = dict(volunteers or {})
        self.coords = list(coordinators)
        self.services = dict(services or {})
        self.asked: list[str | None] = []

    def requester(self, request_id: str) -> Recipient | None:
        return self.requesters.get(request_id)

    def volunteer(self, volunteer_id: str) -> Recipient | None:
        return self.volunteers.get(volunteer_id)

    def service_name(self, service_type_id: str, locale: Locale) -> str | None:
        names = self.services.get(service_type_id)
        return names[locale] if names else None

    async def coordinators(self, township_id: str | None) -> list[Recipient]:
        self.asked.append(township_id)
        return [c.recipient() for c in self.coords if c.township_id == township_id]


class FakePreferences:
    """The PreferenceSource port: preferences by person id, phones that replied TD."""

    def __init__(self) -> None:
        self.people: dict[str, Preferences] = {}
        self.blocked: set[str] = set()

    def get(self, person_id: str) -> Preferences | None:
        return self.people.get(person_id)

    def sms_blocked(self, phone: str | None) -> bool:
        return phone in self.blocked


def notify_on_fakes(
    channels: Mapping[str, Channel],
    directory: Directory,
    clock: Clock,
    *,
    preferences: FakePreferences | None = None,
    policy: DeliveryPolicy | None = None,
) -> tuple[NotifyOnEvent, FakeRepo, FakeTimers]:
    """The use case on a fresh repository and timers, its delivery timers wired to its
    dispatcher as `bootstrap.build` wires them to the scheduler."""
    repo, timers = FakeRepo(), FakeTimers(clock)
    use_case = NotifyOnEvent(
        repo,
        channels,
        directory,
        timers=timers,
        preferences=preferences,
        policy=policy,
        clock=clock,
    )

    async def resume(timer: Timer) -> None:
        await use_case.dispatcher.on_timer(timer.key, timer.payload)

    timers.register(RESUME, resume)
    return use_case, repo, timers
