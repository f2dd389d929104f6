"""Reminders before an appointment, on the kit's durable timers (ADR 0012).

A `VolunteerAssigned` arms one timer per assignment, due `lead` before the window starts (none
when that moment has passed). The assignment's end — cancelled for any reason (the request
cancelled, a no-show, a reassignment, a withdrawal), completed, or checked in — cancels it.
A cancelled timer is a tombstone: a redelivered `VolunteerAssigned` cannot re-arm it. When it
fires, the volunteer and the requester are reminded; the deliveries are keyed by the timer's
id, so a timer run twice (a replica crashed mid-run) still sends once, and the timers' leases
make one replica of several run it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Protocol

from zhumeng_contracts.envelope import EventMeta
from zhumeng_contracts.events import (
    AssignmentCancelled,
    AssignmentCompleted,
    CheckedIn,
    VolunteerAssigned,
)
from zhumeng_kit.mongo import Doc
from zhumeng_kit.timers import Clock, ScheduleResult, Timer, TimerHandler, TimerState

from ..domain.templates import Reminder
from .notify import NotifyOnEvent

log = logging.getLogger("zhumeng.notify.reminders")

REMINDER = "appointment-reminder"
DEFAULT_LEAD = timedelta(hours=2)


class Timers(Protocol):
    """What reminders need of `zhumeng_kit.timers.Scheduler`."""

    async def schedule(
        self, kind: str, key: str, due_at: datetime, payload: Doc | None = None
    ) -> ScheduleResult: ...

    async def cancel(self, kind: str, key: str) -> TimerState | None: ...

    def register(self, kind: str, handler: TimerHandler) -> None: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


def reminder_due(window_start: datetime, lead: timedelta, now: datetime) -> datetime | None:
    """When to remind: `lead` before the start, or never if that moment has passed."""
    due = window_start - lead
    return due if due > now else None


class Reminders:
    def __init__(
        self,
        timers: Timers,
        notify: NotifyOnEvent,
        *,
        lead: timedelta = DEFAULT_LEAD,
        clock: Clock = _utcnow,
    ) -> None:
        self._timers = timers
        self._notify = notify
        self._lead = lead
        self._clock = clock

    async def on_assigned(self, meta: EventMeta, event: VolunteerAssigned) -> ScheduleResult | None:
        due = reminder_due(event.window.start, self._lead, self._clock())
        if due is None:
            return None
        payload: Doc = {
            "request_id": event.request_id,
            "volunteer_id": event.volunteer_id,
            "service_type_id": event.service_type_id,
            "window_start": event.window.start.isoformat(),
            "window_end": event.window.end.isoformat(),
        }
        return await self._timers.schedule(REMINDER, event.assignment_id, due, payload)

    async def on_ended(
        self, meta: EventMeta, event: AssignmentCancelled | AssignmentCompleted | CheckedIn
    ) -> TimerState | None:
        state = await self._timers.cancel(REMINDER, event.assignment_id)
        if state == "leased":
            log.info("reminder for %s is being sent as it ends", event.assignment_id)
        return state

    async def fire(self, timer: Timer) -> None:
        p = timer.payload
        reminder = Reminder(
            id=timer.id,
            request_id=str(p["request_id"]),
            assignment_id=timer.key,
            volunteer_id=str(p["volunteer_id"]),
            service_type_id=str(p["service_type_id"]),
            window_start=datetime.fromisoformat(str(p["window_start"])),
            window_end=datetime.fromisoformat(str(p["window_end"])),
        )
        await self._notify.appointment_reminder(reminder)


def register_reminders(
    timers: Timers, use_case: NotifyOnEvent, *, lead: timedelta = DEFAULT_LEAD
) -> Reminders:
    """Build the reminders and register their timer handler on the scheduler; hand the result
    to `matching_handlers(use_case, reminders)`."""
    reminders = Reminders(timers, use_case, lead=lead)
    timers.register(REMINDER, reminders.fire)
    return reminders
