"""Zhumeng local infrastructure (Kafka KRaft broker + FerretDB), started as plain processes."""

from zhumeng_devstack.infra import (
    FERRETDB_VERSION,
    KAFKA_VERSION,
    FerretDBServer,
    InfraError,
    KafkaServer,
    cache_dir,
    ensure_ferretdb,
    ensure_kafka_jars,
    free_port,
    repo_root,
)

__all__ = [
    "FERRETDB_VERSION",
    "KAFKA_VERSION",
    "FerretDBServer",
    "InfraError",
    "KafkaServer",
    "cache_dir",
    "ensure_ferretdb",
    "ensure_kafka_jars",
    "free_port",
    "repo_root",
]
