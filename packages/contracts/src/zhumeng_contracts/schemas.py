"""JSON Schemas generated from the event models, committed under packages/contracts/schemas.

`python -m zhumeng_contracts.schemas --write` regenerates them; the contract tests fail when a
committed schema no longer matches its model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .compat import breaking_changes
from .events import ALL_EVENTS, Event

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def schema_for(event: type[Event]) -> dict[str, Any]:
    schema = event.model_json_schema(mode="validation")
    schema["$id"] = f"urn:zhumeng:event:{event.TYPE}"
    schema["x-topic"] = event.TOPIC
    return schema


def rendered() -> dict[str, str]:
    return {
        f"{e.TYPE}.json": json.dumps(schema_for(e), indent=2, ensure_ascii=False, sort_keys=True)
        + "\n"
        for e in ALL_EVENTS
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the committed schemas")
    parser.add_argument(
        "--allow-breaking",
        action="store_true",
        help="write even a breaking change (make a new vN type instead)",
    )
    args = parser.parse_args()
    stale, breaking = [], []
    for name, text in rendered().items():
        path = SCHEMA_DIR / name
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old == text:
            continue
        stale.append(name)
        if old is not None:
            breaking += [
                f"{name}: {p}" for p in breaking_changes(json.loads(old), json.loads(text))
            ]
    if breaking and not args.allow_breaking:
        raise SystemExit(
            "breaking schema changes (publish a new vN type instead):\n  " + "\n  ".join(breaking)
        )
    if args.write:
        for name, text in rendered().items():
            (SCHEMA_DIR / name).write_text(text, encoding="utf-8")
    elif stale:
        raise SystemExit(f"stale schemas (run with --write): {', '.join(stale)}")


if __name__ == "__main__":
    main()
