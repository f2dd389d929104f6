"""The use case: tell the people an event concerns, each exactly once per channel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import (
    AssignmentCancelled,
    AssignmentCompleted,
    CheckedIn,
    RequestCompleted,
    RequestUnfulfilled,
    RequestUnmatched,
    VolunteerAssigned,
)

from ..domain import templates
from ..domain.model import Cause, Recipient, Rendered
from ..domain.recipients import first_name
from .delivery import ContactMissing, DeliveryPolicy, Dispatcher, Outcome, describe
from .ports import Channel, DeliveryRepository, Directory, PreferenceSource, Timers

log = logging.getLogger("zhumeng.notify")


__all__ = ["ContactMissing", "NotifyOnEvent", "Outcome"]


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

    Delivery (channel choice, quiet hours, dedupe, retries, dead letters) is the
    `Dispatcher`'s (app/delivery.py); handlers call `self._deliver(recipient, rendered, cause)`.
    """

    def __init__(
        self,
        deliveries: DeliveryRepository,
        channels: Mapping[str, Channel],
        directory: Directory,
        *,
        timers: Timers,
        preferences: PreferenceSource | None = None,
        policy: DeliveryPolicy | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._dispatcher = Dispatcher(
            deliveries,
            channels,
            directory,
            timers,
            preferences=preferences,
            policy=policy,
            clock=clock,
        )
        # what handlers see: contacts as the people's preferences shape them (e.g. locale)
        self._directory: Directory = self._dispatcher.directory
        self._clock = clock

    @property
    def dispatcher(self) -> Dispatcher:
        return self._dispatcher

    @property
    def email_enabled(self) -> bool:
        return "email" in self._dispatcher.channels

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
        return await self._dispatcher.deliver(recipient, rendered, cause)


_describe = describe  # kept for callers of the former name
