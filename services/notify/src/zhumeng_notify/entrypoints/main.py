"""`zhumeng-notify` / `python -m zhumeng_notify`: run the service."""

from __future__ import annotations

import argparse

from zhumeng_kit.logs import configure_logging
from zhumeng_kit.runtime import serve

from ..bootstrap import build
from ..settings import NotifySettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="zhumeng-notify", description="Zhumeng notify: tells people what happened."
    )
    parser.add_argument("--port", type=int, default=None, help="HTTP port (default 8004)")
    args = parser.parse_args(argv)
    settings = NotifySettings()
    if args.port is not None:
        settings = settings.model_copy(update={"http_port": args.port})
    configure_logging(settings.log_level, "notify")
    serve(build(settings), settings)
