"""The catalog as a real process against a real local Kafka broker and document server.

Self-contained: the module starts its own Kafka and document server (SecantusDB by default)
on free ports in a temporary directory (so it never collides with other test sessions),
creates the topics from the registry, runs `python -m zhumeng_catalog` as a subprocess and
talks to it over HTTP, then reads what it published back from the compacted topics.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from zhumeng_devstack.infra import KafkaServer, document_server, ensure_kafka_jars, free_port
from zhumeng_kit.auth import mint_token
from zhumeng_kit.kafka import ensure_topics
from zhumeng_kit.mongo import make_client
from zhumeng_kit.problems import PROBLEM_JSON
from zhumeng_kit.settings import DEV_JWT_SECRET

pytestmark = pytest.mark.integration

CATALOG_TOPICS = (
    "catalog.service-types.v1",
    "catalog.places.v1",
    "catalog.volunteers.v1",
    "catalog.teams.v1",
    "catalog.contacts.v1",
)
ADMIN = {"Authorization": f"Bearer {mint_token(DEV_JWT_SECRET, 'adm_it', ['admin'])}"}
COORD = {"Authorization": f"Bearer {mint_token(DEV_JWT_SECRET, 'co_it', ['coordinator'])}"}
RESIDENT = {"Authorization": f"Bearer {mint_token(DEV_JWT_SECRET, 'res_it', ['resident'])}"}


class CatalogProcess:
    def __init__(self, env: dict[str, str], log_file: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "ZHUMENG_HTTP_PORT": str(self.port)}
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> None:
        log = open(self.log_file, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zhumeng_catalog"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"catalog exited: {self.log_file.read_text()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"catalog not ready: {self.log_file.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@dataclass
class Stack:
    bootstrap: str
    mongo_uri: str
    tmp: Path
    catalog: CatalogProcess

    def catalog_env(self, prefix: str, **extra: str) -> dict[str, str]:
        return {
            "ZHUMENG_KAFKA_BOOTSTRAP": self.bootstrap,
            "ZHUMENG_MONGO_URI": self.mongo_uri,
            "ZHUMENG_MONGO_DB_PREFIX": prefix,
            "ZHUMENG_ENVIRONMENT": "test",
            "ZHUMENG_RELAY_POLL_MS": "50",
            **extra,
        }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    ensure_kafka_jars()
    tmp = tmp_path_factory.mktemp("catalog_it")
    kafka = KafkaServer(tmp / "kafka", free_port(), free_port(), tmp / "kafka.log")
    # SecantusDB by default (ZHUMENG_DOCDB): FerretDB v1's updates are not atomic (ADR 0003)
    docdb = document_server(tmp / "docdb", free_port(), tmp / "docdb.log")
    started: list[Any] = []
    try:
        for server in (kafka, docdb):
            server.start()
            started.append(server)
        kafka.wait_ready()
        docdb.wait_ready()
        asyncio.run(ensure_topics(kafka.bootstrap))
        s = Stack(kafka.bootstrap, docdb.uri, tmp, None)  # type: ignore[arg-type]
        prefix = f"it{uuid.uuid4().hex[:10]}"
        s.catalog = CatalogProcess(s.catalog_env(prefix), tmp / "catalog.log")
        s.catalog.start()
        try:
            yield s
        finally:
            s.catalog.stop()
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.catalog.url, timeout=30) as client:
        yield client


async def read_topic(bootstrap: str, topic: str) -> list[tuple[str, dict[str, str], Any]]:
    """Everything on a topic right now: (key, headers, decoded JSON value)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        parts = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or set())
        ]
        if not parts:
            await consumer._client.force_metadata_update()
            parts = [
                TopicPartition(topic, p)
                for p in sorted(consumer.partitions_for_topic(topic) or set())
            ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        out: list[tuple[str, dict[str, str], Any]] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < end for tp, end in ends.items()])

        while await behind():
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for r in records:
                    headers = {k: v.decode() for k, v in r.headers}
                    value = json.loads(r.value) if r.value is not None else None
                    out.append(((r.key or b"").decode(), headers, value))
        return out
    finally:
        await consumer.stop()


async def end_offsets(bootstrap: str) -> dict[str, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        parts = [
            TopicPartition(t, p)
            for t in CATALOG_TOPICS
            for p in consumer.partitions_for_topic(t) or ()
        ]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        return {t: sum(off for tp, off in ends.items() if tp.topic == t) for t in CATALOG_TOPICS}
    finally:
        # aiokafka: stopping a consumer before its background task ever ran raises
        # CancelledError; give it a turn of the loop first.
        await asyncio.sleep(0.05)
        await consumer.stop()


async def wait_for(
    bootstrap: str, topic: str, key: str, version: int, within_s: float = 30
) -> list[tuple[str, dict[str, str], Any]]:
    """The records of `key` on `topic` once one with `version` arrived (the relay is async)."""
    deadline = time.monotonic() + within_s
    while True:
        mine = [r for r in await read_topic(bootstrap, topic) if r[0] == key]
        if any(r[2] and r[2].get("version") == version for r in mine):
            return mine
        if time.monotonic() > deadline:
            raise AssertionError(f"{key} v{version} never reached {topic}: {mine}")
        await asyncio.sleep(0.3)


async def outbox_drained(mongo_uri: str, db_name: str, within_s: float = 180) -> None:
    """Wait until the relay has published and removed every pending outbox entry."""
    client = make_client(mongo_uri, "catalog-it")
    try:
        db = client[db_name]
        deadline = time.monotonic() + within_s
        while True:
            pending = 0
            for coll in ("places", "service_types", "volunteers", "teams"):
                pending += await db[coll].count_documents({"has_outbox": True})
            if not pending:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{pending} documents still have pending outbox entries")
            await asyncio.sleep(0.5)
    finally:
        await client.close()


def assert_problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and body["title"]
    return body


# ---------------------------------------------------------------------------------- tests


async def test_health(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json()["status"] == "ok"
    ready = (await http.get("/readyz")).json()
    assert ready["status"] == "ready" and ready["checks"] == {"mongo": True, "kafka": True}


async def test_no_or_bad_token_is_401(http: httpx.AsyncClient) -> None:
    assert_problem(await http.get("/v1/places"), 401)
    assert_problem(await http.get("/v1/places", headers={"Authorization": "Bearer nope"}), 401)
    forged = mint_token("another-secret-that-is-long-enough-000", "x", ["admin"])
    assert_problem(await http.get("/v1/places", headers={"Authorization": f"Bearer {forged}"}), 401)
    assert_problem(await http.post("/v1/places", json={}, headers=RESIDENT), 403)


async def test_create_and_publish_through_the_outbox(http: httpx.AsyncClient, stack: Stack) -> None:
    town = {
        "id": "pl_it_town",
        "kind": "township",
        "name_zh": "测试镇",
        "name_en": "Testtown",
        "location": {"lat": 25.5, "lon": 118.25},
    }
    village = {
        "id": "pl_it_town_v1",
        "kind": "village",
        "name_zh": "测试村",
        "name_en": "Test village",
        "parent_id": "pl_it_town",
        "location": {"lat": 25.52, "lon": 118.27},
    }
    for body in (town, village):
        resp = await http.post("/v1/places", json=body, headers=COORD)
        assert resp.status_code == 201, resp.text
    assert (await http.get("/v1/places/pl_it_town_v1", headers=RESIDENT)).json()[
        "township_id"
    ] == "pl_it_town"

    st = {
        "id": "it_haircut",
        "name_zh": "义务理发",
        "name_en": "Free haircut",
        "category": "personal_care",
        "required_skills": ["haircut"],
        "default_duration_min": 45,
        "target_claim_min": 60,
    }
    resp = await http.post("/v1/service-types", json=st, headers=COORD)
    assert resp.status_code == 201, resp.text

    vol = {
        "id": "vol_it_1",
        "name": "林美华",
        "display_name": "美华",
        "phone": "13800000001",
        "email": "vol_it_1@volunteers.zhumeng.example",
        "skills": ["haircut", "driving"],
        "home_place_id": "pl_it_town_v1",
        "radius_km": 15,
        "capacity": 2,
        "availability": [{"weekday": 0, "start": "08:00", "end": "20:00"}],
        "languages": ["mandarin", "minnan"],
    }
    resp = await http.post("/v1/volunteers", json=vol, headers=COORD)
    assert resp.status_code == 201, resp.text
    shown = resp.json()
    assert shown["phone"] == "138****0001" and shown["email"].startswith("v***@")
    assert shown["home"] == {"lat": 25.52, "lon": 118.27}
    assert shown["township_id"] == "pl_it_town"
    mine = (
        await http.get(
            "/v1/volunteers/vol_it_1",
            headers={
                "Authorization": "Bearer " + mint_token(DEV_JWT_SECRET, "vol_it_1", ["volunteer"])
            },
        )
    ).json()
    assert mine["phone"] == "13800000001"

    resp = await http.patch("/v1/volunteers/vol_it_1", json={"radius_km": 25}, headers=COORD)
    assert resp.json()["version"] == 2

    boot = stack.bootstrap
    vrecs = await wait_for(boot, "catalog.volunteers.v1", "vol_it_1", 2)
    for _, headers, value in vrecs:
        assert headers["ce_type"] == "zhumeng.catalog.volunteer.v1"
        assert headers["ce_source"] == "zhumeng/catalog" and headers["ce_id"]
        assert not {"name", "phone", "email"} & set(value)
        assert value["display_name"] == "美华" and value["township_id"] == "pl_it_town"
    assert [v["version"] for _, _, v in vrecs] == [1, 2]

    contacts = await wait_for(boot, "catalog.contacts.v1", "vol_it_1", 1)
    assert [c[2]["version"] for c in contacts] == [1]  # radius change: no new contact record
    assert contacts[0][1]["ce_type"] == "zhumeng.catalog.contact.v1"
    assert contacts[0][2]["phone"] == "13800000001" and contacts[0][2]["name"] == "林美华"

    await wait_for(boot, "catalog.service-types.v1", "it_haircut", 1)
    await wait_for(boot, "catalog.places.v1", "pl_it_town_v1", 1)
    for topic in CATALOG_TOPICS:
        if topic == "catalog.contacts.v1":
            continue
        for _, _, value in await read_topic(boot, topic):
            dumped = json.dumps(value, ensure_ascii=False)
            assert "13800000001" not in dumped and "vol_it_1@" not in dumped, topic

    team = {"id": "team_it", "name": "IT barbers", "member_ids": ["vol_it_1"]}
    assert (await http.post("/v1/teams", json=team, headers=COORD)).status_code == 201
    assert (await http.get("/v1/volunteers/vol_it_1", headers=COORD)).json()["team_ids"] == [
        "team_it"
    ]
    await wait_for(boot, "catalog.teams.v1", "team_it", 1)

    gone = await http.delete("/v1/service-types/it_haircut", headers=ADMIN)
    assert gone.status_code == 200 and gone.json()["active"] is False
    st_recs = await wait_for(boot, "catalog.service-types.v1", "it_haircut", 2)
    assert st_recs[-1][2]["active"] is False


async def test_search_and_pagination(http: httpx.AsyncClient) -> None:
    for i in range(2, 6):
        body = {
            "id": f"vol_it_{i}",
            "name": f"测试{i}",
            "display_name": f"{i}",
            "skills": ["driving"] if i % 2 else ["cooking"],
            "home_place_id": "pl_it_town",
        }
        assert (await http.post("/v1/volunteers", json=body, headers=COORD)).status_code == 201
    drivers = (await http.get("/v1/volunteers", params={"skill": "driving"}, headers=COORD)).json()
    assert [v["id"] for v in drivers["items"]] == ["vol_it_1", "vol_it_3", "vol_it_5"]
    near = (
        await http.get(
            "/v1/volunteers", headers=COORD, params={"near": "25.52,118.27", "within_km": 1}
        )
    ).json()
    assert [v["id"] for v in near["items"]] == ["vol_it_1"]
    assert near["items"][0]["distance_km"] == 0
    ids: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "township_id": "pl_it_town"}
        if cursor:
            params["cursor"] = cursor
        page = (await http.get("/v1/volunteers", params=params, headers=COORD)).json()
        ids += [v["id"] for v in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert ids == [f"vol_it_{i}" for i in range(1, 6)]
    found = (
        await http.get(
            "/v1/service-types", params={"q": "HAIR", "include_inactive": True}, headers=COORD
        )
    ).json()["items"]
    assert [s["id"] for s in found] == ["it_haircut"]
    villages = (
        await http.get(
            "/v1/places", params={"kind": "village", "township_id": "pl_it_town"}, headers=COORD
        )
    ).json()["items"]
    assert [p["id"] for p in villages] == ["pl_it_town_v1"]


async def test_bad_input_gives_problems(http: httpx.AsyncClient) -> None:
    orphan = {
        "id": "pl_orphan",
        "kind": "village",
        "name_zh": "孤村",
        "name_en": "Orphan",
        "parent_id": "pl_nowhere",
        "location": {"lat": 25.5, "lon": 118.2},
    }
    assert_problem(await http.post("/v1/places", json=orphan, headers=COORD), 422)
    assert_problem(
        await http.post("/v1/places", json={**orphan, "parent_id": None}, headers=COORD), 422
    )
    dup = {
        "id": "pl_it_town",
        "kind": "township",
        "name_zh": "x",
        "name_en": "x",
        "location": {"lat": 25.5, "lon": 118.2},
    }
    assert_problem(await http.post("/v1/places", json=dup, headers=COORD), 409)
    assert_problem(await http.post("/v1/volunteers", json={"name": "x"}, headers=COORD), 422)
    assert_problem(
        await http.post(
            "/v1/volunteers",
            headers=COORD,
            json={"name": "x", "display_name": "x", "home_place_id": "pl_missing"},
        ),
        422,
    )
    assert_problem(
        await http.post(
            "/v1/volunteers",
            headers=COORD,
            json={"name": "x", "display_name": "x", "home_place_id": "pl_it_town", "phone": "abc"},
        ),
        422,
    )
    assert_problem(
        await http.post(
            "/v1/teams", headers=COORD, json={"name": "ghosts", "member_ids": ["vol_nobody"]}
        ),
        422,
    )
    assert_problem(await http.get("/v1/volunteers/vol_nobody", headers=COORD), 404)
    assert_problem(await http.get("/v1/volunteers/Not%20An%20Id", headers=COORD), 422)
    assert_problem(await http.get("/v1/volunteers", params={"cursor": "%%%"}, headers=COORD), 400)
    assert_problem(
        await http.patch("/v1/places/pl_it_town", json={"kind": "village"}, headers=COORD), 422
    )
    assert_problem(
        await http.post(
            "/v1/service-types",
            content=b"[1,2",
            headers={**COORD, "content-type": "application/json"},
        ),
        422,
    )


async def test_demo_seed_is_idempotent(stack: Stack) -> None:
    """A seeded start publishes the demo catalog once; a second start publishes nothing."""
    prefix = f"seed{uuid.uuid4().hex[:8]}"
    env = stack.catalog_env(prefix, ZHUMENG_CATALOG_SEED_DEMO="true")
    before = await end_offsets(stack.bootstrap)
    first = CatalogProcess(env, stack.tmp / "catalog-seed.log")
    first.start(timeout=240)
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as client:
            types = (await client.get("/v1/service-types", headers=COORD)).json()["items"]
            assert len(types) == 12
            towns = (
                await client.get(
                    "/v1/places", params={"kind": "township", "limit": 200}, headers=COORD
                )
            ).json()["items"]
            assert len(towns) == 18
            dentists = (
                await client.get(
                    "/v1/volunteers", headers=COORD, params={"certification": "dentist_license"}
                )
            ).json()["items"]
            assert dentists
        await wait_for(stack.bootstrap, "catalog.volunteers.v1", "vol_0200", 1)
        await wait_for(stack.bootstrap, "catalog.teams.v1", "team_youth", 1)
        await outbox_drained(stack.mongo_uri, f"{prefix}_catalog")
        seeded = await end_offsets(stack.bootstrap)
        assert seeded["catalog.contacts.v1"] - before["catalog.contacts.v1"] == 200
        assert seeded["catalog.service-types.v1"] - before["catalog.service-types.v1"] == 12
    finally:
        first.stop()
    second = CatalogProcess(env, stack.tmp / "catalog-seed.log")
    second.start(timeout=240)
    try:
        await asyncio.sleep(1.5)
        assert await end_offsets(stack.bootstrap) == seeded
    finally:
        second.stop()
