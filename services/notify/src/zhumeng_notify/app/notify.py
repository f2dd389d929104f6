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
    ClaimOpened,
    OfferExpired,
    OfferMade,
    RequestCompleted,
    RequestEscalated,
    RequestPosted,
    RequestReviewed,
    RequestUnfulfilled,
    RequestUnmatched,
    ReviewRequired,
    VolunteerAssigned,
)

from ..domain import templates
from ..domain.model import Cause, Recipient, Rendered
from ..domain.preferences import apply
from ..domain.recipients import escalation_audience, first_name, offer_is_urgent
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
        self._directory = self._dispatcher.directory
        # coordinators are asked of the port itself (the dispatcher's view forwards contacts
        # only) and shaped by their preferences here
        self._coordinator_directory = directory
        self._preferences = preferences
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

    # ---- who hears what beyond the match (ADR 0012) -----------------------------------------

    async def request_posted(self, meta: EventMeta, event: RequestPosted) -> list[Outcome]:
        requester = self._requester(event.request_id)
        facts = templates.PostedFacts(
            request_id=event.request_id,
            service=self._service(event.service_type_id, requester),
            window_start=event.window.start,
            window_end=event.window.end,
            slots=event.slots,
        )
        rendered = templates.posted_to_requester(requester.locale, requester.name, facts)
        return [await self._deliver(requester, rendered, self._cause(meta, event.request_id))]

    async def request_reviewed(self, meta: EventMeta, event: RequestReviewed) -> list[Outcome]:
        requester = self._requester(event.request_id)
        facts = templates.ReviewedFacts(event.request_id, event.decision, event.note)
        rendered = templates.reviewed_to_requester(requester.locale, requester.name, facts)
        return [await self._deliver(requester, rendered, self._cause(meta, event.request_id))]

    async def review_required(self, meta: EventMeta, event: ReviewRequired) -> list[Outcome]:
        coordinators = await self._coordinators(event.township_id, "township")
        sends = [
            (
                c,
                templates.review_required_to_coordinator(
                    c.locale,
                    c.name,
                    templates.ReviewFacts(
                        request_id=event.request_id,
                        service=self._service(event.service_type_id, c),
                        township_id=event.township_id,
                        held_at=event.held_at,
                    ),
                ),
            )
            for c in coordinators
        ]
        return await self._deliver_all(sends, self._cause(meta, event.request_id))

    async def request_escalated(self, meta: EventMeta, event: RequestEscalated) -> list[Outcome]:
        """The requester hears that the search goes on; the coordinators of the rung (township
        liaison: the township's, county centre: the county's) that a request needs them."""
        facts = templates.EscalatedFacts(
            request_id=event.request_id,
            level=event.level,
            step=event.step,
            open_slots=event.open_slots,
        )
        sends: list[tuple[Recipient, Rendered]] = []
        scope = escalation_audience(event.level)
        if scope is not None:
            for c in await self._coordinators(event.township_id, scope):
                sends.append((c, templates.escalated_to_coordinator(c.locale, c.name, facts)))
        requester = self._directory.requester(event.request_id)
        if requester is not None:
            rendered = templates.still_looking_to_requester(requester.locale, requester.name, facts)
            sends.append((requester, rendered))
        outcomes = await self._deliver_all(sends, self._cause(meta, event.request_id))
        if requester is None:  # the coordinators were told, and are skipped on the retry
            raise ContactMissing(f"no contact yet for the requester of request {event.request_id}")
        return outcomes

    async def offer_made(self, meta: EventMeta, event: OfferMade) -> list[Outcome]:
        volunteer = self._volunteer(event.volunteer_id, event.request_id)
        facts = templates.OfferFacts(
            request_id=event.request_id,
            service=self._service(event.service_type_id, volunteer),
            window_start=event.window.start,
            window_end=event.window.end,
            expires_at=event.expires_at,
            distance_km=event.distance_km,
            urgent=offer_is_urgent(event.expires_at),
        )
        rendered = templates.offer_to_volunteer(volunteer.locale, volunteer.name, facts)
        return [await self._deliver(volunteer, rendered, self._cause(meta, event.request_id))]

    async def offer_expired(self, meta: EventMeta, event: OfferExpired) -> list[Outcome]:
        volunteer = self._volunteer(event.volunteer_id, event.request_id)
        rendered = templates.offer_expired_to_volunteer(
            volunteer.locale, volunteer.name, templates.OfferExpiredFacts(event.request_id)
        )
        return [await self._deliver(volunteer, rendered, self._cause(meta, event.request_id))]

    async def claim_opened(self, meta: EventMeta, event: ClaimOpened) -> list[Outcome]:
        """Each invited volunteer once (a repeated id in the list is one person)."""
        sends: list[tuple[Recipient, Rendered]] = []
        missing: list[str] = []
        for volunteer_id in dict.fromkeys(event.invited_volunteer_ids):
            volunteer = self._directory.volunteer(volunteer_id)
            if volunteer is None:
                missing.append(volunteer_id)
                continue
            facts = templates.ClaimFacts(
                request_id=event.request_id,
                service=self._service(event.service_type_id, volunteer),
                window_start=event.window.start,
                window_end=event.window.end,
                open_slots=event.open_slots,
            )
            rendered = templates.claim_invitation_to_volunteer(
                volunteer.locale, volunteer.name, facts
            )
            sends.append((volunteer, rendered))
        outcomes = await self._deliver_all(sends, self._cause(meta, event.request_id))
        if missing:
            raise ContactMissing(
                f"no contact yet for {len(missing)} invited volunteer(s) of request "
                f"{event.request_id}"
            )
        return outcomes

    async def appointment_reminder(self, reminder: templates.Reminder) -> list[Outcome]:
        """A durable timer fired before the appointment: remind the volunteer and the
        requester. Keyed by the timer's id, so a timer run twice sends once."""
        cause = Cause(reminder.id, templates.REMINDER_CAUSE, reminder.request_id)
        requester = self._directory.requester(reminder.request_id)
        volunteer = self._directory.volunteer(reminder.volunteer_id)
        sends: list[tuple[Recipient, Rendered]] = []
        if volunteer is not None:
            facts = self._reminder_facts(reminder, volunteer, requester=requester)
            sends.append(
                (
                    volunteer,
                    templates.reminder_to_volunteer(volunteer.locale, volunteer.name, facts),
                )
            )
        if requester is not None:
            facts = self._reminder_facts(reminder, requester, volunteer=volunteer)
            sends.append(
                (
                    requester,
                    templates.reminder_to_requester(requester.locale, requester.name, facts),
                )
            )
        outcomes = await self._deliver_all(sends, cause)
        if requester is None or volunteer is None:
            raise ContactMissing(f"no contact yet for a person of request {reminder.request_id}")
        return outcomes

    def _reminder_facts(
        self,
        reminder: templates.Reminder,
        recipient: Recipient,
        *,
        requester: Recipient | None = None,
        volunteer: Recipient | None = None,
    ) -> templates.ReminderFacts:
        return templates.ReminderFacts(
            request_id=reminder.request_id,
            service=self._service(reminder.service_type_id, recipient),
            window_start=reminder.window_start,
            window_end=reminder.window_end,
            volunteer_first_name=first_name(volunteer.name) if volunteer else None,
            requester_first_name=first_name(requester.name) if requester else None,
        )

    async def _coordinators(self, township_id: str, scope: str) -> list[Recipient]:
        """The coordinators of the township (or, for scope "county", of the county centre); a
        township without any falls back to the county centre, so nothing goes unheard."""
        found: list[Recipient] = []
        if scope == "township":
            found = await self._coordinator_directory.coordinators(township_id)
        if not found:
            found = await self._coordinator_directory.coordinators(None)
        if not found:
            log.warning("no coordinator for township %s nor the county centre", township_id)
        prefs = self._preferences
        return [apply(c, prefs.get(c.id)) for c in found] if prefs else found

    async def _deliver_all(
        self, sends: list[tuple[Recipient, Rendered]], cause: Cause
    ) -> list[Outcome]:
        """Every send finishes (or fails) before the first failure is raised."""
        results = await asyncio.gather(
            *(self._deliver(r, rendered, cause) for r, rendered in sends), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]
        return [r for r in results if not isinstance(r, BaseException)]

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
            mode=event.mode,
        )

    async def _deliver(self, recipient: Recipient, rendered: Rendered, cause: Cause) -> Outcome:
        return await self._dispatcher.deliver(recipient, rendered, cause)


_describe = describe  # kept for callers of the former name
