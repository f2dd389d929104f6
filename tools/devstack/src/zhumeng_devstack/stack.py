"""The whole platform on this machine: Kafka, FerretDB, a mail sink and the four services,
each a separate process on loopback. Used by `make run` and by the test fixtures."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .infra import KafkaServer, document_server, ensure_kafka_jars, repo_root
from .mail import MailSink

SERVICES: tuple[str, ...] = ("catalog", "requests", "matching", "notify")
Log = Callable[[str], None]


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass
class StackConfig:
    data_dir: Path
    kafka_port: int = 9092
    controller_port: int = 9093
    mongo_port: int = 27017
    smtp_port: int = 8025
    service_ports: dict[str, int] = field(
        default_factory=lambda: {
            "catalog": 8001,
            "requests": 8002,
            "matching": 8003,
            "notify": 8004,
        }
    )
    db_prefix: str = "zhumeng"
    seed_demo: bool = True
    environment: str = "development"
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, data_dir: Path | None = None) -> StackConfig:
        """Ports are configurable: ZHUMENG_KAFKA_PORT, ZHUMENG_MONGO_PORT, ZHUMENG_SMTP_PORT,
        ZHUMENG_<SERVICE>_PORT."""
        cfg = cls(data_dir=data_dir or repo_root() / ".data" / "dev")
        cfg.kafka_port = _env_int("ZHUMENG_KAFKA_PORT", cfg.kafka_port)
        cfg.controller_port = _env_int("ZHUMENG_KAFKA_CONTROLLER_PORT", cfg.kafka_port + 1)
        cfg.mongo_port = _env_int("ZHUMENG_MONGO_PORT", cfg.mongo_port)
        cfg.smtp_port = _env_int("ZHUMENG_SMTP_PORT", cfg.smtp_port)
        for name in SERVICES:
            cfg.service_ports[name] = _env_int(
                f"ZHUMENG_{name.upper()}_PORT", cfg.service_ports[name]
            )
        return cfg


def _die_with_parent() -> None:
    """Runs in the child before exec: if the stack process dies, even by kill -9, the kernel
    sends this service SIGTERM, so no service outlives the stack that started it."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class ServiceProcess:
    def __init__(self, name: str, port: int, env: dict[str, str], log_file: Path) -> None:
        self.name = name
        self.port = port
        self.env = env
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        out = self.log_file.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"zhumeng_{self.name}"],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n" + self.tail()
                )
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise TimeoutError(f"{self.name} not ready after {timeout}s:\n" + self.tail())

    def tail(self, n: int = 4000) -> str:
        try:
            return self.log_file.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """kill -9: no clean shutdown, exactly what a crash looks like."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 15) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


class Platform:
    def __init__(self, config: StackConfig, log: Log = print) -> None:
        self.config = config
        self.log = log
        d = config.data_dir
        self.kafka = KafkaServer(
            d / "kafka", config.kafka_port, config.controller_port, d / "logs" / "kafka.log"
        )
        self.mongo = document_server(d / "docdb", config.mongo_port, d / "logs" / "docdb.log")
        self.mail = MailSink(d / "mail", config.smtp_port)
        self.services: dict[str, ServiceProcess] = {}

    def wipe(self) -> None:
        if self.config.data_dir.exists():
            shutil.rmtree(self.config.data_dir)

    def start_infra(self) -> None:
        from zhumeng_kit.kafka import ensure_topics

        self.log("· Kafka jars (Maven Central, cached)")
        ensure_kafka_jars(self.log)
        if self.mongo.name == "ferretdb":
            from .infra import ensure_ferretdb

            self.log("· FerretDB binary (Go toolchain, cached)")
            ensure_ferretdb(self.log)
        self.log(f"· starting Kafka (KRaft) on 127.0.0.1:{self.config.kafka_port}")
        self.kafka.start()
        self.log(f"· starting {self.mongo.name} on 127.0.0.1:{self.config.mongo_port}")
        self.mongo.start()
        self.mongo.wait_ready()
        self.kafka.wait_ready()
        created = asyncio.run(ensure_topics(self.kafka.bootstrap))
        self.log(f"· topics ready ({len(created)} created)")
        self.mail.start()
        self.log(f"· mail sink on 127.0.0.1:{self.config.smtp_port} → {self.mail.folder}")

    def service_env(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZHUMENG_")}
        env.update(
            {
                "ZHUMENG_ENVIRONMENT": self.config.environment,
                "ZHUMENG_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
                "ZHUMENG_MONGO_URI": self.mongo.uri,
                "ZHUMENG_MONGO_DB_PREFIX": self.config.db_prefix,
                "ZHUMENG_HTTP_PORT": str(self.config.service_ports[name]),
                "ZHUMENG_CATALOG_SEED_DEMO": "true" if self.config.seed_demo else "false",
                # notify's coordinator directory: one per demo township, two at the county
                "ZHUMENG_NOTIFY_SEED_DEMO": "true" if self.config.seed_demo else "false",
                "ZHUMENG_SMTP_HOST": "127.0.0.1",
                "ZHUMENG_SMTP_PORT": str(self.config.smtp_port),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.config.extra_env)
        return env

    def start_service(self, name: str) -> ServiceProcess:
        svc = ServiceProcess(
            name,
            self.config.service_ports[name],
            self.service_env(name),
            self.config.data_dir / "logs" / f"{name}.log",
        )
        svc.start()
        self.services[name] = svc
        return svc

    def start_services(self) -> None:
        # catalog first: the others build their views from its topics
        for name in SERVICES:
            self.log(f"· starting {name} on {self.config.service_ports[name]}")
            self.start_service(name)
            if name == "catalog":
                self.services[name].wait_ready()
        for svc in self.services.values():
            svc.wait_ready()
            self.log(f"  {svc.name} ready at {svc.url}")

    def restart(self, name: str) -> ServiceProcess:
        old = self.services[name]
        old.stop()
        svc = self.start_service(name)
        svc.wait_ready()
        return svc

    def url(self, name: str) -> str:
        return self.services[name].url

    def stop(self) -> None:
        for svc in reversed(list(self.services.values())):
            svc.stop()
        self.mail.stop()
        self.mongo.stop()
        self.kafka.stop()
