"""Settings validated at start-up: a service refuses to start with a bad or unsafe value."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .mongo import MAX_IDLE_S

# Only for development and tests; production must set its own (checked below).
DEV_JWT_SECRET = "zhumeng-development-secret-not-for-production-use"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ZHUMENG_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    kafka_bootstrap: str = Field(default="127.0.0.1:9092", min_length=3)
    mongo_uri: str = Field(default="mongodb://127.0.0.1:27017/", pattern=r"^mongodb(\+srv)?://")
    mongo_db_prefix: str = Field(default="zhumeng", pattern=r"^[a-z][a-z0-9_]{0,30}$")
    # a pooled connection idle this long is closed by the driver, not reused (mongo.make_client)
    mongo_max_idle_s: int = Field(default=MAX_IDLE_S, ge=1, le=3600)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    jwt_secret: str = Field(default=DEV_JWT_SECRET, min_length=32)
    jwt_issuer: str = "zhumeng"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    relay_poll_ms: int = Field(default=200, ge=10, le=10_000)
    consumer_max_attempts: int = Field(default=5, ge=1, le=20)
    consumer_backoff_ms: int = Field(default=200, ge=1, le=60_000)
    # consumers per subscriber in the service's group: each owns whole partitions, so events
    # of one key stay in order while different keys are handled in parallel
    consumer_workers: int = Field(default=3, ge=1, le=16)

    @model_validator(mode="after")
    def _no_default_secret_in_production(self) -> ServiceSettings:
        if self.environment == "production" and self.jwt_secret == DEV_JWT_SECRET:
            raise ValueError("ZHUMENG_JWT_SECRET must be set in production")
        return self

    def db_name(self, service: str) -> str:
        """Each service owns its database (DESIGN §1)."""
        return f"{self.mongo_db_prefix}_{service}"
