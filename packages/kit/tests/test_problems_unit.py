"""Problem bodies: a dropped database connection is a retryable 503, an unknown error a 500;
both RFC 9457 bodies."""

import httpx
from fastapi import FastAPI
from pymongo.errors import AutoReconnect

from zhumeng_kit.problems import PROBLEM_JSON, install_problem_handlers


def app() -> FastAPI:
    api = FastAPI()
    install_problem_handlers(api)

    @api.post("/dropped")
    async def dropped() -> None:
        raise AutoReconnect("127.0.0.1:27017: connection closed")

    @api.post("/broken")
    async def broken() -> None:
        raise RuntimeError("a bug")

    return api


async def test_a_dropped_database_connection_is_a_503_to_retry() -> None:
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        dropped = await client.post("/dropped")
        broken = await client.post("/broken")
    assert dropped.status_code == 503 and dropped.headers["retry-after"] == "1"
    assert dropped.headers["content-type"].startswith(PROBLEM_JSON)
    assert dropped.json()["type"].endswith("/unavailable")
    assert "27017" not in dropped.text  # nothing about the infrastructure leaks
    assert broken.status_code == 500 and broken.json()["type"].endswith("/internal")
