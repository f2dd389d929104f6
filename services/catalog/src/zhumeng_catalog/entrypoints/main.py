"""`zhumeng-catalog` / `python -m zhumeng_catalog`: parse settings, build, serve."""

from __future__ import annotations

import argparse

from zhumeng_kit.logs import configure_logging
from zhumeng_kit.runtime import serve

from ..bootstrap import build
from ..settings import CatalogSettings


def _port(text: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError("a port is 1..65535")
    return port


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Zhumeng catalog service (env ZHUMENG_*)")
    parser.add_argument("--port", type=_port, default=None, help="overrides ZHUMENG_HTTP_PORT")
    parser.add_argument("--seed-demo", action="store_true", help="load the demo catalog")
    args = parser.parse_args(argv)
    overrides: dict[str, object] = {}
    if args.port is not None:
        overrides["http_port"] = args.port
    settings = CatalogSettings()
    if args.seed_demo:
        overrides["seed_demo"] = True
    if overrides:
        settings = settings.model_copy(update=overrides)
    configure_logging(settings.log_level, "catalog")
    serve(build(settings), settings)
