"""Who may change what in the catalog: the scope of a coordinator (DESIGN.md §8).

Pure rules, no I/O; the use cases apply them to the states they are about to replace and to
the states they are about to write.

- Admins, and county-wide coordinators (`Principal.township is None`), may change anything.
- A township coordinator (`Principal.township` set) may change only what lies in that
  township: the villages under it, the volunteers whose home is in it, the teams that belong
  to it — both as they are and as they would become. Service types, townships and the county
  are county-level; so is moving a volunteer, a village or a team to another township.
- Anyone else may change nothing (the HTTP layer already refuses them; this is the backstop).

Team membership is mirrored on both sides (a team's `member_ids`, a volunteer's `team_ids`):
the scope applies to the entity being edited; the mirrored side is bookkeeping, so a township
coordinator may put volunteers from anywhere into their own team, as the demo teams are.

Reads are not restricted here.
"""

from __future__ import annotations

from zhumeng_kit.auth import Principal
from zhumeng_kit.problems import Forbidden

from ..domain.models import Place, Team, Volunteer

SYSTEM = Principal("system:catalog", frozenset({"admin"}))
"""The catalog itself (e.g. loading the demo catalog): may change anything."""


def write_scope(by: Principal) -> str | None:
    """The one township `by` may change things in, or None when they may change anything.

    Raises Forbidden when `by` may change nothing at all."""
    if by.has("admin"):
        return None
    if not by.has("coordinator"):
        raise Forbidden("only coordinators and admins may change the catalog")
    return by.township


def check_county_level(by: Principal, what: str) -> None:
    """For what only county-wide coordinators and admins may change (e.g. service types)."""
    township = write_scope(by)
    if township is not None:
        raise Forbidden(f"{what} are county-level: a coordinator of {township} may not change them")


def check_place(by: Principal, place: Place) -> None:
    """A township coordinator may change only the villages of their township."""
    township = write_scope(by)
    if township is None:
        return
    if place.kind != "village":
        raise Forbidden(
            f"{place.id} is a {place.kind}, which is county-level: "
            f"a coordinator of {township} may change only the villages of {township}"
        )
    if place.township_id != township:
        raise Forbidden(
            f"the village {place.id} is in {place.township_id}: "
            f"a coordinator of {township} may change only the villages of {township}"
        )


def check_volunteer(by: Principal, volunteer: Volunteer) -> None:
    """A township coordinator may change only the volunteers whose home is in their township
    (and may not move one out of it)."""
    township = write_scope(by)
    if township is None or volunteer.township_id == township:
        return
    raise Forbidden(
        f"volunteer {volunteer.id}'s home is in {volunteer.township_id}: a coordinator of "
        f"{township} may change only volunteers living in {township} "
        "(moving a volunteer to another township is county-level)"
    )


def check_team(by: Principal, team: Team) -> None:
    """A township coordinator may change only the teams of their township."""
    township = write_scope(by)
    if township is None or team.township_id == township:
        return
    where = f"belongs to {team.township_id}" if team.township_id else "is county-wide"
    raise Forbidden(
        f"team {team.id} {where}: a coordinator of {township} may change only the teams "
        f"of {township}"
    )
