"""Fixtures of notify's store tests: one local document server per test module (started by
the project's own devstack), and a fresh deliveries collection per test."""

from collections.abc import AsyncIterator, Iterator

import pytest
from pymongo.asynchronous.collection import AsyncCollection

from zhumeng_devstack.infra import FerretDBServer, document_server, free_port
from zhumeng_kit.ids import new_id
from zhumeng_kit.mongo import Doc, make_client
from zhumeng_notify.adapters.mongo import MongoDeliveryRepository


@pytest.fixture(scope="module")
def docdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FerretDBServer]:
    data = tmp_path_factory.mktemp("docdb")
    server = document_server(data / "docdb", free_port(), data / "docdb.log")
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
async def deliveries(docdb: FerretDBServer) -> AsyncIterator[AsyncCollection[Doc]]:
    client = make_client(docdb.uri, "notify-store-test")
    coll: AsyncCollection[Doc] = client[new_id("zt")]["deliveries"]
    await MongoDeliveryRepository(coll).ensure_indexes()
    try:
        yield coll
    finally:
        await client.close()
