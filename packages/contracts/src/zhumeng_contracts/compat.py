"""Schema compatibility: what counts as a breaking change to an event type (DESIGN §3).

Additive changes keep the version: a new optional field, a relaxed constraint. Breaking: a
field removed, a field newly required, a field's type changed. A breaking change needs a new
`vN` event type instead.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def _resolve(schema: Schema, node: Schema) -> Schema:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return dict(schema.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {}))
    return node


def _types(schema: Schema, node: Schema) -> set[str]:
    node = _resolve(schema, node)
    if "anyOf" in node:
        return set().union(*(_types(schema, n) for n in node["anyOf"]))
    if "type" in node:
        return {node["type"]} if isinstance(node["type"], str) else set(node["type"])
    if "enum" in node or "const" in node:
        return {"enum"}
    return {"object" if "properties" in node else "any"}


def breaking_changes(old: Schema, new: Schema, path: str = "") -> list[str]:
    """Reasons a consumer written against `old` would reject or misread data valid under `new`."""
    problems: list[str] = []
    old_props: dict[str, Schema] = old.get("properties", {})
    new_props: dict[str, Schema] = new.get("properties", {})
    for name in old_props.keys() - new_props.keys():
        problems.append(f"{path}{name}: removed")
    for name in set(new.get("required", [])) - set(old.get("required", [])):
        problems.append(f"{path}{name}: newly required")
    for name in old_props.keys() & new_props.keys():
        old_types, new_types = _types(old, old_props[name]), _types(new, new_props[name])
        if not new_types <= old_types | {"any"} and "any" not in old_types:
            problems.append(f"{path}{name}: type {sorted(old_types)} -> {sorted(new_types)}")
        old_node, new_node = _resolve(old, old_props[name]), _resolve(new, new_props[name])
        if "properties" in old_node and "properties" in new_node:
            problems += breaking_changes(
                {**old_node, "$defs": old.get("$defs", {})},
                {**new_node, "$defs": new.get("$defs", {})},
                f"{path}{name}.",
            )
    return problems
