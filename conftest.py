"""Shared fixtures: one real platform per test session (Kafka, the document server, a mail
sink and the four services as separate processes), on free loopback ports with its own data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from zhumeng_devstack.stack import Platform
from zhumeng_devstack.testing import isolated_stack_config


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    data = Path(os.environ.get("ZHUMENG_TEST_DATA") or tmp_path_factory.mktemp("platform"))
    stack = Platform(isolated_stack_config(data), log=lambda line: print(line, flush=True))
    try:
        stack.start_infra()
        stack.start_services()
        yield stack
    except BaseException:
        for svc in stack.services.values():
            print(f"--- {svc.name} log tail ---\n{svc.tail()}")
        raise
    finally:
        stack.stop()
