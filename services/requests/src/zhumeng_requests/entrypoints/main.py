"""`zhumeng-requests` / `python -m zhumeng_requests`: run the requests service."""

from __future__ import annotations

from zhumeng_kit.logs import configure_logging
from zhumeng_kit.runtime import serve

from ..bootstrap import RequestsSettings, build


def main() -> None:
    settings = RequestsSettings()  # validated here: a bad setting stops the start
    configure_logging(settings.log_level, "requests")
    serve(build(settings), settings)
