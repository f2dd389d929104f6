"""The runtime's graceful stop: background loops end first, then every shutdown step runs,
even when an earlier one fails (nothing here connects: the broker and client are lazy)."""

import asyncio

from zhumeng_kit.runtime import ServiceRuntime
from zhumeng_kit.settings import ServiceSettings


async def test_stop_cancels_loops_then_runs_every_shutdown_step() -> None:
    runtime = ServiceRuntime("unit", ServiceSettings())
    order: list[str] = []
    running = asyncio.Event()

    async def loop() -> None:
        running.set()
        try:
            await asyncio.sleep(3600)
        finally:
            order.append("loop ended")

    async def failing() -> None:
        order.append("failing step")
        raise RuntimeError("a client that would not close")

    async def closing() -> None:
        order.append("closing step")

    runtime.on_shutdown(failing)
    runtime.on_shutdown(closing)
    runtime._tasks = [asyncio.create_task(runtime._guard(loop))]  # as start() would
    await running.wait()
    await runtime.stop()
    assert order == ["loop ended", "failing step", "closing step"]
