"""The use case: tell the people an event concerns, each exactly once per channel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import (
    AssignmentCancelled,
    AssignmentCompleted,
    CheckedIn,
    NotificationDelivered,
    RequestCompleted,
    RequestUnfulfilled,
    RequestUnmatched,
    VolunteerAssigned,
)

from ..domain import templates
from ..domain.model import (
    Cause,
    Delivery,
    Final,
    Message,
    Receipt,
    Recipient,
    Rendered,
    address_for,
    delivery_id,
)
from ..domain.recipients import choose_channel, first_name
from .ports import Channel, DeliveryRepository, Directory

log = logging.getLogger("zhumeng.notify")


class ContactMissing(Exception):
    """A recipient's contact is not in the view yet (its topic can lag): retried."""


class DeliveryBusy(Exception):
    """Another sender holds the delivery's lease: retried once the lease has run out."""


class SendFailed(Exception):
    """A channel failed and attempts remain: the event is retried with backoff."""


@dataclass(frozen=True)
class Outcome:
    delivery_id: str
    result: str  # sent | failed | skipped (already done)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class NotifyOnEvent:
    """Handles matching and lifecycle events: renders, picks a channel, and sends through the
    delivery log.

    Who is told what (DESIGN §5, the requester is told of every change):
    VolunteerAssigned -> requester (with the check-in code) and volunteer (never the code);
    CheckedIn -> requester; AssignmentCompleted -> volunteer; RequestCompleted -> requester;
    AssignmentCancelled -> volunteer (request_cancelled, no_show, reassigned; a volunteer's
    own withdrawal is not echoed); RequestUnmatched, RequestUnfulfilled -> requester.

    Flow per recipient: claim the delivery (insert pending; a duplicate that is sent or failed
    is skipped; a pending one past its lease, left by a crash mid-send, is taken over), send,
    then one update to sent/failed that also queues `NotificationDelivered` in the outbox.
    """

    def __init__(
        self,
        deliveries: DeliveryRepository,
        channels: Mapping[str, Channel],
        directory: Directory,
        *,
        lease: timedelta = timedelta(seconds=30),
        max_send_attempts: int = 3,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if "log" not in channels:
            raise ValueError("the log channel is the fallback and must be configured")
        self._deliveries = deliveries
        self._channels = dict(channels)
        self._directory = directory
        self._lease = lease
        self._max_send = max(1, max_send_attempts)
        self._clock = clock

    @property
    def email_enabled(self) -> bool:
        return "email" in self._channels

    # ---- event handlers --------------------------------------------------------------------

    async def volunteer_assigned(self, meta: EventMeta, event: VolunteerAssigned) -> list[Outcome]:
        cause = Cause(meta.id, meta.type, event.request_id)
        requester = self._directory.requester(event.request_id)
        volunteer = self._directory.volunteer(event.volunteer_id)
        sends = []
        if requester is not None:
            facts = self._assigned_facts(event, requester)
            # the code goes to the requester only: they show it to the volunteer on arrival
            rendered = templates.assigned_to_requester(
                requester.locale, requester.name, facts, event.checkin_code
            )
            sends.append(self._deliver(requester, rendered, cause))
        if volunteer is not None:
            requester_name = first_name(requester.name) if requester else ""
            facts = self._assigned_facts(event, volunteer, requester_name)
            rendered = templates.assigned_to_volunteer(volunteer.locale, volunteer.name, facts)
            sends.append(self._deliver(volunteer, rendered, cause))
        # both people at once; every send finishes (or fails) before a failure is raised
        results = await asyncio.gather(*sends, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]
        outcomes: list[Outcome] = [r for r in results if not isinstance(r, BaseException)]
        missing = [w for w, r in (("requester", requester), ("volunteer", volunteer)) if r is None]
        if missing:
            # The others were told (and are skipped when this is retried): raise for a retry.
            raise ContactMissing(
                f"no contact yet for the {' and '.join(missing)} of request {event.request_id}"
            )
        return outcomes

    async def request_unmatched(self, meta: EventMeta, event: RequestUnmatched) -> list[Outcome]:
        requester = self._directory.requester(event.request_id)
        if requester is None:
            raise ContactMissing(f"no contact yet for the requester of request {event.request_id}")
        facts = templates.UnmatchedFacts(
            request_id=event.request_id,
            service=self._service(event.service_type_id, requester),
        )
        rendered = templates.unmatched_to_requester(requester.locale, requester.name, facts)
        cause = Cause(meta.id, meta.type, event.request_id)
        return [await self._deliver(requester, rendered, cause)]

    async def checked_in(self, meta: EventMeta, event: CheckedIn) -> list[Outcome]:
        requester = self._requester(event.request_id)
        # The event carries no name: the first name from the volunteer contact view; should
        # that be missing, the message says "your volunteer" rather than wait for it.
        volunteer = self._directory.volunteer(event.volunteer_id)
        facts = templates.CheckedInFacts(
            request_id=event.request_id,
            volunteer_first_name=first_name(volunteer.name) if volunteer else None,
            checked_in_at=event.checked_in_at,
        )
        rendered = templates.checked_in_to_requester(requester.locale, requester.name, facts)
        return [await self._deliver(requester, rendered, self._cause(meta, event.request_id))]

    async def request_completed(self, meta: EventMeta, event: RequestCompleted) -> list[Outcome]:
        requester = self._requester(event.request_id)
        facts = templates.RequestCompletedFacts(event.request_id, event.hours_total)
        rendered = templates.request_completed_to_requester(requester.locale, requester.name, facts)
        return [await self._deliver(requester, rendered, self._cause(meta, event.request_id))]

    async def request_unfulfilled(
        self, meta: EventMeta, event: RequestUnfulfilled
    ) -> list[Outcome]:
        requester = self._requester(event.request_id)
        facts = templates.UnfulfilledFacts(
            request_id=event.request_id,
            reason=event.reason,
            filled_slots=event.filled_slots,
            slots=event.slots,
        )
        rendered = templates.unfulfilled_to_requester(requester.locale, requester.name, facts)
        return [await self._deliver(requester, rendered, self._cause(meta, event.request_id))]

    async def assignment_completed(
        self, meta: EventMeta, event: AssignmentCompleted
    ) -> list[Outcome]:
        volunteer = self._volunteer(event.volunteer_id, event.request_id)
        facts = templates.AssignmentCompletedFacts(
            request_id=event.request_id,
            service=self._service(event.service_type_id, volunteer),
            hours=event.hours,
        )
        rendered = templates.assignment_completed_to_volunteer(
            volunteer.locale, volunteer.name, facts
        )
        return [await self._deliver(volunteer, rendered, self._cause(meta, event.request_id))]

    async def assignment_cancelled(
        self, meta: EventMeta, event: AssignmentCancelled
    ) -> list[Outcome]:
        if event.reason not in templates.VOLUNTEER_CANCEL_REASONS:
            # the volunteer withdrew themselves; the requester hears of the next step
            # (another VolunteerAssigned, or RequestUnfulfilled)
            log.info("assignment %s %s: nobody to tell", event.assignment_id, event.reason)
            return []
        volunteer = self._volunteer(event.volunteer_id, event.request_id)
        facts = templates.CancelledFacts(request_id=event.request_id, reason=event.reason)
        rendered = templates.cancelled_to_volunteer(volunteer.locale, volunteer.name, facts)
        return [await self._deliver(volunteer, rendered, self._cause(meta, event.request_id))]

    # ---- recipients ------------------------------------------------------------------------

    def _requester(self, request_id: str) -> Recipient:
        requester = self._directory.requester(request_id)
        if requester is None:
            raise ContactMissing(f"no contact yet for the requester of request {request_id}")
        return requester

    def _volunteer(self, volunteer_id: str, request_id: str) -> Recipient:
        volunteer = self._directory.volunteer(volunteer_id)
        if volunteer is None:
            raise ContactMissing(f"no contact yet for the volunteer of request {request_id}")
        return volunteer

    @staticmethod
    def _cause(meta: EventMeta, request_id: str) -> Cause:
        return Cause(meta.id, meta.type, request_id)

    # ---- delivery --------------------------------------------------------------------------

    def _service(self, service_type_id: str, recipient: Recipient) -> str:
        name = self._directory.service_name(service_type_id, recipient.locale)
        if name is None:
            log.warning("service type %s not in the catalog view; using its id", service_type_id)
            return service_type_id
        return name

    def _assigned_facts(
        self, event: VolunteerAssigned, recipient: Recipient, requester_first: str = ""
    ) -> templates.AssignedFacts:
        return templates.AssignedFacts(
            request_id=event.request_id,
            service=self._service(event.service_type_id, recipient),
            window_start=event.window.start,
            window_end=event.window.end,
            volunteer_name=event.volunteer_display_name,
            requester_first_name=requester_first,
            slot=event.slot,
            slots=event.slots,
        )

    async def _deliver(self, recipient: Recipient, rendered: Rendered, cause: Cause) -> Outcome:
        channel_name = choose_channel(recipient, self.email_enabled)
        channel = self._channels[channel_name]
        message = Message(
            delivery_id=delivery_id(cause.event_id, recipient.id, channel_name),
            channel=channel_name,
            recipient=recipient,
            address=address_for(recipient, channel_name),
            rendered=rendered,
            cause=cause,
            locale=recipient.locale,
        )
        now = self._clock()
        claim = await self._deliveries.claim(Delivery.of(message), now, self._lease)
        if claim.kind == "done":
            log.info("delivery %s already %s; not sent again", message.delivery_id, claim.status)
            return Outcome(message.delivery_id, "skipped")
        if claim.kind == "busy":
            raise DeliveryBusy(
                f"delivery {message.delivery_id} is being sent elsewhere (lease until "
                f"{claim.lease_until})"
            )
        try:
            receipt = await channel.send(message)
        except Exception as exc:
            error = _describe(exc, message.address)
            if claim.attempts < self._max_send:
                await self._deliveries.release(
                    message.delivery_id, claim.attempts, self._clock(), error
                )
                log.warning(
                    "delivery %s attempt %d failed (%s); will retry",
                    message.delivery_id,
                    claim.attempts,
                    error,
                )
                raise SendFailed(f"delivery {message.delivery_id}: {error}") from None
            log.error(
                "delivery %s failed after %d attempts: %s",
                message.delivery_id,
                claim.attempts,
                error,
            )
            await self._finish(message, claim.attempts, "failed", None, error)
            return Outcome(message.delivery_id, "failed")
        await self._finish(message, claim.attempts, "sent", receipt, None)
        return Outcome(message.delivery_id, "sent")

    async def _finish(
        self,
        message: Message,
        attempt: int,
        status: Final,
        receipt: Receipt | None,
        error: str | None,
    ) -> None:
        now = self._clock()
        event = NotificationDelivered(
            delivery_id=message.delivery_id,
            cause_event_id=message.cause.event_id,
            cause_event_type=message.cause.event_type,
            recipient_id=message.recipient.id,
            recipient_role=message.recipient.role,
            channel=message.channel,
            status=status,
            delivered_at=now,
        )
        held = await self._deliveries.complete(
            message.delivery_id, attempt, status, now, receipt, error, event
        )
        if not held:
            log.warning(
                "delivery %s was taken over by another sender before it completed",
                message.delivery_id,
            )


def _describe(exc: Exception, address: str | None) -> str:
    """An error text fit to store and log: no address, no body."""
    text = f"{type(exc).__name__}: {exc}"[:300]
    if address:
        text = text.replace(address, "<address>")
    return text
