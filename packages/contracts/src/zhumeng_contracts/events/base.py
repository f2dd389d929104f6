"""Base class for event payloads."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class Event(BaseModel):
    """An event payload. `TYPE` is its CloudEvents type; `TOPIC` the topic it travels on.

    Payloads ignore unknown fields so that additive changes keep the version (DESIGN §3).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    TYPE: ClassVar[str]
    TOPIC: ClassVar[str]

    def key(self) -> str:
        """The Kafka message key: the aggregate id."""
        raise NotImplementedError
