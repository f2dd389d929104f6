"""Provider templates: SMS providers and WeChat send pre-approved templates with parameters,
never free text. A table from settings says, per kind of message and locale, which template
to use and where each of its parameters comes from.

Kind: `<event type>/<recipient role>`, else `<event type>`, else `*` (the fallback), e.g.
`zhumeng.volunteer.assigned.v1/requester`. Locale: the message's, else zh-CN.

    {"zhumeng.volunteer.assigned.v1/requester":
        {"zh-CN": {"id": "SMS_4650001", "params": {"name": "name", "code": "request_id"}}},
     "*": {"zh-CN": {"id": "SMS_4650000", "params": {"text": "text"}}}}

`params` maps the template's own parameter name (Alibaba: the ${name} in the template;
Tencent: any label, the values go in this order; WeChat: the data key such as `thing1`) to
one of the message fields in FIELDS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ...app.ports import SendRejected
from ...domain.model import Message
from ...domain.recipients import first_name

DEFAULT_LOCALE = "zh-CN"


def _text(m: Message) -> str:
    return m.rendered.short or m.rendered.subject


FIELDS: dict[str, Callable[[Message], str]] = {
    "name": lambda m: first_name(m.recipient.name),
    "request_id": lambda m: m.cause.request_id,
    "subject": lambda m: m.rendered.subject,
    "text": _text,
}


@dataclass(frozen=True)
class ProviderTemplate:
    id: str
    params: tuple[tuple[str, str], ...]  # (the template's parameter, our field), in order

    def values(self, message: Message) -> list[tuple[str, str]]:
        return [(key, FIELDS[field](message)) for key, field in self.params]


class TemplateTable:
    def __init__(self, table: Mapping[str, Mapping[str, ProviderTemplate]]) -> None:
        self._table = table

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> TemplateTable:
        """Validates a table from settings; ValueError names the bad entry."""
        table: dict[str, dict[str, ProviderTemplate]] = {}
        for kind, locales in raw.items():
            if not isinstance(locales, Mapping) or not locales:
                raise ValueError(f"template kind {kind!r}: expected {{locale: template}}")
            table[kind] = {}
            for locale, spec in locales.items():
                where = f"template {kind!r}/{locale!r}"
                if not isinstance(spec, Mapping) or not str(spec.get("id") or "").strip():
                    raise ValueError(f"{where}: needs a non-empty 'id'")
                params = spec.get("params", {})
                if not isinstance(params, Mapping):
                    raise ValueError(f"{where}: 'params' must map parameter -> field")
                unknown = sorted(str(f) for f in params.values() if f not in FIELDS)
                if unknown:
                    raise ValueError(f"{where}: unknown fields {unknown}; use {sorted(FIELDS)}")
                table[kind][locale] = ProviderTemplate(
                    str(spec["id"]), tuple((str(k), str(f)) for k, f in params.items())
                )
        return cls(table)

    def __bool__(self) -> bool:
        return bool(self._table)

    def for_message(self, message: Message) -> ProviderTemplate:
        """The template for a message, or SendRejected: without an approved template the
        provider cannot send it, and retrying does not change that."""
        kinds = (f"{message.cause.event_type}/{message.recipient.role}", message.cause.event_type)
        for kind in (*kinds, "*"):
            locales = self._table.get(kind)
            if locales:
                found = locales.get(message.locale) or locales.get(DEFAULT_LOCALE)
                if found:
                    return found
        raise SendRejected(f"no provider template for {kinds[0]} in {message.locale}")
