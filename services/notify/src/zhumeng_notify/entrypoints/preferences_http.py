"""HTTP API: a person's notification preferences (the person themself, or an admin).

No `from __future__ import annotations` here: FastAPI must see the real dependency types.
"""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from zhumeng_kit.auth import Principal
from zhumeng_kit.problems import Forbidden

from ..adapters.preferences_store import PreferenceStore
from ..domain.preferences import Preferences


class PreferencesOut(Preferences):
    person_id: str
    stored: bool  # False: nothing chosen yet, these are the defaults


def router(
    store: PreferenceStore, current: Callable[[Request], Coroutine[Any, Any, Principal]]
) -> APIRouter:
    api = APIRouter(prefix="/v1/people", tags=["preferences"])
    Who = Annotated[Principal, Depends(current)]

    def check(who: Principal, person_id: str) -> None:
        if who.subject != person_id and not who.has("admin"):
            raise Forbidden("only the person themself or an admin may do this")

    @api.get("/{person_id}/preferences", response_model=PreferencesOut)
    async def get_preferences(person_id: str, who: Who) -> PreferencesOut:
        check(who, person_id)
        prefs = await store.load(person_id)
        chosen = prefs or Preferences()
        return PreferencesOut(**chosen.model_dump(), person_id=person_id, stored=bool(prefs))

    @api.put("/{person_id}/preferences", response_model=PreferencesOut)
    async def put_preferences(person_id: str, body: Preferences, who: Who) -> PreferencesOut:
        """Replace the person's preferences as a whole (channels in order of preference,
        locale, WeChat binding, quiet hours, opted-out channels)."""
        check(who, person_id)
        await store.put(person_id, body)
        return PreferencesOut(**body.model_dump(), person_id=person_id, stored=True)

    return api
