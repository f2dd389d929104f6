"""Team requests on the real stack: a team's lead claims slots for members of the team, nobody
else may, and a team claim racing twenty individual claims never fills more slots than
there are. A village clinic whose slots need different people (barbers, an audiologist, a
dentist) is filled role by role, by a team and by an individual."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from zhumeng_devstack.stack import Platform
from zhumeng_devstack.testing import (
    bearer,
    catalog_read,
    create_service_type,
    eventually,
    longxun_request,
    publish_request,
    read_topic,
    request_body,
)

pytestmark = pytest.mark.integration
ADMIN = bearer("admin_teams", "admin")


@pytest.fixture(scope="module")
async def crew(
    platform: Platform,
    pooled_service_type: Callable[..., Awaitable[str]],
    catalog_volunteer: Callable[..., Awaitable[None]],
) -> dict[str, Any]:
    """A skill only this module's volunteers have: a team of a lead and three members, another
    team of the same lead with three other members (for the race: newcomers serve one request
    at a time, so the first team's members are busy), and twenty individuals; a team-mode
    service type that needs the skill."""
    tag = secrets.token_hex(3)
    skill = f"teamtest_{tag}"
    lead, members = f"vol_tl_{tag}", [f"vol_tm{i}_{tag}" for i in range(3)]
    racers = [f"vol_tq{i}_{tag}" for i in range(3)]
    individuals = [f"vol_ti{i:02d}_{tag}" for i in range(20)]
    for vid in [lead, *members, *racers, *individuals]:
        await catalog_volunteer(vid, [skill])
    async with httpx.AsyncClient(base_url=platform.url("catalog"), timeout=30) as api:
        for team_id, names in ((f"team_{tag}", members), (f"team_q_{tag}", racers)):
            team = await api.post(
                "/v1/teams",
                json={
                    "id": team_id,
                    "name": "测试队",
                    "lead_volunteer_id": lead,
                    "member_ids": names,
                    "skills": [skill],
                },
                headers=ADMIN,
            )
            assert team.status_code == 201, team.text
    teams = [f"team_{tag}", f"team_q_{tag}"]
    everyone = [lead, *members, *racers, *individuals, *teams]
    await catalog_read(platform.url("matching"), platform.kafka.bootstrap, everyone)
    service = await pooled_service_type(
        "team_test", matching_mode="team", required_skills=[skill], claim_invites=60
    )
    return {
        "team": f"team_{tag}",
        "lead": lead,
        "members": members,
        "race_team": f"team_q_{tag}",
        "racers": racers,
        "individuals": individuals,
        "service": service,
    }


async def waiting_for_claims(api: httpx.AsyncClient, request_id: str) -> dict[str, Any]:
    async def opened() -> dict[str, Any] | None:
        got = await api.get(f"/v1/decisions/{request_id}", headers=ADMIN)
        doc = got.json() if got.status_code == 200 else {}
        invited = doc.get("lifecycle", {}).get("invited")
        return doc if doc.get("state") == "team_claiming" and invited else None

    return await eventually(opened, within=90, what="the team request to open")


async def test_the_lead_claims_two_of_three_slots_and_nobody_else_may(
    platform: Platform, crew: dict[str, Any]
) -> None:
    event = longxun_request(crew["service"], prefix="req_tm", slots=3)
    await publish_request(platform.kafka.bootstrap, event)
    url = f"/v1/matches/{event.request_id}/team-claims"
    two = {"team_id": crew["team"], "member_ids": crew["members"][:2]}
    async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=30) as api:
        await waiting_for_claims(api, event.request_id)
        not_lead = await api.post(url, json=two, headers=bearer(crew["members"][0], "volunteer"))
        outsider = await api.post(
            url,
            json={"team_id": crew["team"], "member_ids": [crew["individuals"][0]]},
            headers=bearer(crew["lead"], "volunteer"),
        )
        claimed = await api.post(url, json=two, headers=bearer(crew["lead"], "volunteer"))
        too_many = await api.post(
            url,
            json={"team_id": crew["team"], "member_ids": [crew["members"][2], crew["lead"]]},
            headers=bearer(crew["lead"], "volunteer"),
        )
        listed = await api.get(
            f"/v1/teams/{crew['team']}/open-requests", headers=bearer(crew["lead"], "volunteer")
        )
    assert not_lead.status_code == 403, not_lead.text
    assert not_lead.headers["content-type"].startswith("application/problem+json")
    assert outsider.status_code == 422 and outsider.json()["code"] == "not_member"
    assert claimed.status_code == 200, claimed.text
    body = claimed.json()
    assert body["state"] == "partially_assigned"
    assert {a["volunteer_id"] for a in body["team"]} == set(crew["members"][:2])
    assert too_many.status_code == 409, too_many.text  # one slot left, two asked for
    open_ids = {i["request_id"]: i["open_slots"] for i in listed.json()["items"]}
    assert open_ids.get(event.request_id) == 1

    async def published() -> list[tuple[str, dict[str, Any]]] | None:
        out = []
        for r in await read_topic(platform.kafka.bootstrap, "matching.events.v1"):
            h = dict(r.headers)
            if h.get("ce_subject") == event.request_id.encode():
                out.append((h["ce_type"].decode(), json.loads(r.value)))
        kinds = Counter(k for k, _ in out)
        return out if kinds["zhumeng.volunteer.assigned.v1"] >= 2 else None

    events = await eventually(published, within=60, what="the team's events")
    (team_claimed,) = [b for k, b in events if k == "zhumeng.team.claimed.v1"]
    assert team_claimed["team_id"] == crew["team"] and team_claimed["slots"] == [1, 2]
    assigned = [b for k, b in events if k == "zhumeng.volunteer.assigned.v1"]
    assert {(b["volunteer_id"], b["mode"], b["team_id"]) for b in assigned} == {
        (m, "team", crew["team"]) for m in crew["members"][:2]
    }


async def test_a_team_claim_racing_twenty_individuals_fills_exactly_three_slots(
    platform: Platform, crew: dict[str, Any]
) -> None:
    event = longxun_request(crew["service"], prefix="req_tr", slots=3)
    await publish_request(platform.kafka.bootstrap, event)
    rid = event.request_id
    async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=60) as api:
        invited = set((await waiting_for_claims(api, rid))["lifecycle"]["invited"])
        individuals = [v for v in crew["individuals"] if v in invited]
        assert len(individuals) >= 10
        team_claim = api.post(
            f"/v1/matches/{rid}/team-claims",
            json={"team_id": crew["race_team"], "member_ids": crew["racers"]},
            headers=bearer(crew["lead"], "volunteer"),
        )
        claims = [
            api.post(f"/v1/matches/{rid}/claim", headers=bearer(v, "volunteer"))
            for v in individuals
        ]
        half = len(claims) // 2
        results = await asyncio.gather(*claims[:half], team_claim, *claims[half:])
        decision = (await api.get(f"/v1/decisions/{rid}", headers=ADMIN)).json()
    assert {r.status_code for r in results} <= {200, 409}, [r.text for r in results]
    live = [a for a in decision["lifecycle"]["assignments"] if a["status"] != "cancelled"]
    winners = {a["volunteer_id"] for a in live}
    assert len(live) == 3 and len(winners) == 3
    assert decision["lifecycle"]["state"] == "assigned"
    team_won = results[half].status_code == 200
    by_team = {a["volunteer_id"] for a in live if a.get("team_id") == crew["race_team"]}
    assert by_team == (set(crew["racers"]) if team_won else set())  # all or nothing
    print(f"team won the race: {team_won}; winners: {sorted(winners)}")

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(platform.mongo.uri)
    try:
        loads = client[f"{platform.config.db_prefix}_matching"]["loads"]
        holders = {d["_id"] for d in await loads.find({"active": rid}).to_list()}
    finally:
        await client.close()
    assert holders == winners  # the losers, team included, gave back what they took


@pytest.fixture(scope="module")
async def clinic(platform: Platform, catalog_volunteer: Callable[..., Awaitable[None]]) -> Any:
    """A village clinic made through the catalog API: two barbers, an audiologist and a
    dentist, each role needing a skill or certification only this test's volunteers have; a
    team of two barbers, a dentist and a member who is none of them, and individuals."""
    tag = secrets.token_hex(3)
    cut, audio, dent = f"cut_{tag}", f"audio_{tag}", f"dent_{tag}"
    people = {
        f"vol_cl_{tag}": {},  # the lead: no role of the clinic
        f"vol_cb1_{tag}": {"skills": [cut]},
        f"vol_cb2_{tag}": {"skills": [cut]},
        f"vol_cd_{tag}": {"certifications": [dent]},
        f"vol_cx_{tag}": {"skills": ["cooking"]},  # on the team, qualified for no role
        f"vol_ca_{tag}": {"certifications": [audio]},  # an individual audiologist
        f"vol_cb3_{tag}": {"skills": [cut]},  # an individual barber
    }
    for vid, quals in people.items():
        await catalog_volunteer(
            vid, quals.get("skills", []), **{k: v for k, v in quals.items() if k != "skills"}
        )
    lead, b1, b2, dentist, nobody, audiologist, b3 = people
    async with httpx.AsyncClient(base_url=platform.url("catalog"), timeout=30) as api:
        team = await api.post(
            "/v1/teams",
            json={
                "id": f"team_cl_{tag}",
                "name": "义诊队",
                "lead_volunteer_id": lead,
                "member_ids": [b1, b2, dentist, nobody],
            },
            headers=ADMIN,
        )
        assert team.status_code == 201, team.text
    await catalog_read(
        platform.url("matching"), platform.kafka.bootstrap, [*people, f"team_cl_{tag}"]
    )

    def role(slug: str, count: int = 1, **needs: list[str]) -> dict[str, Any]:
        return {"role": slug, "name_zh": slug, "name_en": slug.title(), "count": count, **needs}

    service = await create_service_type(
        platform,
        "clinic_test",
        category="health",
        matching_mode="team",
        slot_roles=[
            role("barber", 2, required_skills=[cut]),
            role("audiologist", required_certifications=[audio]),
            role("dentist", required_certifications=[dent]),
        ],
    )
    return {
        "service": service,
        "team": f"team_cl_{tag}",
        "lead": lead,
        "barbers": [b1, b2],
        "dentist": dentist,
        "nobody": nobody,
        "audiologist": audiologist,
        "b3": b3,
    }


async def test_a_clinic_is_filled_role_by_role_by_a_team_and_an_individual(
    platform: Platform, clinic: dict[str, Any]
) -> None:
    resident = bearer("res_clinic", "resident")
    body = request_body(clinic["service"], "pl_longxun_v1")
    lead = bearer(clinic["lead"], "volunteer")
    team, barbers, dentist = clinic["team"], clinic["barbers"], clinic["dentist"]
    async with httpx.AsyncClient(timeout=30) as http:
        requests_url = platform.url("requests") + "/v1/requests"
        wrong = await http.post(
            requests_url, json={**body, "slots": 2}, headers={**resident, "Idempotency-Key": "c0"}
        )
        created = await http.post(
            requests_url, json=body, headers={**resident, "Idempotency-Key": "c1"}
        )
        assert created.status_code == 201, created.text
        rid = created.json()["id"]
        assert created.json()["slots"] == 4  # 2 barbers + an audiologist + a dentist
        async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=30) as api:
            opened = await waiting_for_claims(api, rid)
            url = f"/v1/matches/{rid}/team-claims"
            unqualified = await api.post(
                url,
                json={"team_id": team, "member_ids": [barbers[0], clinic["nobody"]]},
                headers=lead,
            )
            claimed = await api.post(
                url,
                json={"team_id": team, "member_ids": [barbers[0], dentist, barbers[1]]},
                headers=lead,
            )
            # only the audiology slot is left: a barber finds no slot of their role
            barber_late = await api.post(
                f"/v1/matches/{rid}/claim", headers=bearer(clinic["b3"], "volunteer")
            )
            audiology = await api.post(
                f"/v1/matches/{rid}/claim", headers=bearer(clinic["audiologist"], "volunteer")
            )
            decision = (await api.get(f"/v1/decisions/{rid}", headers=ADMIN)).json()

        async def assigned() -> dict[str, Any] | None:
            got = (await http.get(f"{requests_url}/{rid}", headers=resident)).json()
            return got if got["status"] == "assigned" and len(got["assignments"]) == 4 else None

        shown = await eventually(assigned, within=90, what="the clinic request assigned")

    assert wrong.status_code == 422, wrong.text
    assert wrong.headers["content-type"].startswith("application/problem+json")
    # every role is invited (claim_invites per role), the audiologist and the barber included
    assert {clinic["audiologist"], clinic["b3"], dentist, *barbers} <= set(
        opened["lifecycle"]["invited"]
    )
    assert unqualified.status_code == 422, unqualified.text
    assert unqualified.json()["code"] == "ineligible"
    assert set(unqualified.json()["reasons"]) == {clinic["nobody"]}
    assert claimed.status_code == 200, claimed.text
    assert barber_late.status_code == 409, barber_late.text
    assert barber_late.json()["code"] == "no_slot"
    assert audiology.status_code == 200, audiology.text
    assert audiology.json()["state"] == "assigned"

    lifecycle = decision["lifecycle"]
    assert lifecycle["slot_roles"] == ["barber", "barber", "audiologist", "dentist"]
    roles = {
        a["volunteer_id"]: (a["slot"], a["role"], a["team_id"]) for a in lifecycle["assignments"]
    }
    assert roles == {
        barbers[0]: (1, "barber", team),
        barbers[1]: (2, "barber", team),
        clinic["audiologist"]: (3, "audiologist", None),
        dentist: (4, "dentist", team),
    }
    # the requester sees who fills which role in each assignment's explanation
    seen = {
        a["volunteer_id"]: [
            p["criterion"] for p in a["explanation"] if p["criterion"].startswith("role:")
        ]
        for a in shown["assignments"]
    }
    assert seen == {
        barbers[0]: ["role:barber"],
        barbers[1]: ["role:barber"],
        clinic["audiologist"]: ["role:audiologist"],
        dentist: ["role:dentist"],
    }

    async def published() -> dict[str, str | None] | None:
        out = {}
        for r in await read_topic(platform.kafka.bootstrap, "matching.events.v1"):
            h = dict(r.headers)
            if (
                h.get("ce_subject") == rid.encode()
                and h["ce_type"] == b"zhumeng.volunteer.assigned.v1"
            ):
                event = json.loads(r.value)
                out[event["volunteer_id"]] = event.get("role")
        return out if len(out) == 4 else None

    assert await eventually(published, within=60, what="the clinic's assignments") == {
        v: role for v, (_, role, _) in roles.items()
    }
