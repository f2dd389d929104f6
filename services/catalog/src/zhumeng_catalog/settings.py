"""The catalog's settings (env prefix `ZHUMENG_`, validated at start-up)."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from zhumeng_kit.settings import ServiceSettings


class CatalogSettings(ServiceSettings):
    http_port: int = Field(default=8001, ge=1, le=65535)
    seed_demo: bool = Field(
        default=False,
        description="load the Dehua demo catalog on start-up (env ZHUMENG_CATALOG_SEED_DEMO)",
        validation_alias=AliasChoices("zhumeng_catalog_seed_demo", "seed_demo"),
    )
