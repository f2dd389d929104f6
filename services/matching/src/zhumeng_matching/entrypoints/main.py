"""`zhumeng-matching` / `python -m zhumeng_matching`: run the matching service."""

from __future__ import annotations

from zhumeng_kit.logs import configure_logging
from zhumeng_kit.runtime import serve

from ..bootstrap import MatchingSettings, build


def main() -> None:
    settings = MatchingSettings()  # validated here: a bad setting stops the start
    configure_logging(settings.log_level, "matching")
    serve(build(settings), settings)
