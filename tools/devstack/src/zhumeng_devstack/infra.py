"""Local infrastructure for Zhumeng: a single-node Kafka (KRaft) broker and FerretDB (SQLite).

No Docker: the Kafka broker runs from jars fetched with Maven (``deploy/local/kafka/pom.xml``),
FerretDB from a binary built with the Go toolchain. Both are cached under ``<repo>/.cache``.
Every server listens on 127.0.0.1 only and runs in its own process group.

See docs/adr/0002-kafka-broker-version.md and docs/adr/0003-mongodb-compatible-server.md.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import string
import struct
import subprocess
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote

__all__ = [
    "FERRETDB_VERSION",
    "KAFKA_VERSION",
    "FerretDBServer",
    "InfraError",
    "KafkaServer",
    "SecantusDBServer",
    "cache_dir",
    "document_server",
    "ensure_ferretdb",
    "ensure_kafka_jars",
    "free_port",
    "repo_root",
]

#: Apache Kafka release run locally. Chosen in docs/adr/0002-kafka-broker-version.md.
KAFKA_VERSION: str = "4.4.0"
#: FerretDB release (v1 line, SQLite backend). See docs/adr/0003-mongodb-compatible-server.md.
FERRETDB_VERSION: str = "v1.24.2"

FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
# PostgreSQL backend is not needed locally; leaving it out makes the build smaller and faster.
FERRETDB_BUILD_TAGS = "ferretdb_no_postgresql"

KAFKA_JVM_OPTS: tuple[str, ...] = (
    "-Xmx512m",
    "-Xms256m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
# Short-lived JVM (storage format): C1 only starts faster.
_TOOL_JVM_OPTS: tuple[str, ...] = (
    "-Xmx256m",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)

Log = Callable[[str], None]
T = TypeVar("T")


class InfraError(RuntimeError):
    """A local server could not be fetched, built, started or reached."""


# --------------------------------------------------------------------------------------------
# paths


def _is_workspace_root(d: Path) -> bool:
    p = d / "pyproject.toml"
    if not p.is_file():
        return False
    try:
        return "[tool.uv.workspace]" in p.read_text(encoding="utf-8")
    except OSError:
        return False


def repo_root() -> Path:
    """The workspace root: the directory whose pyproject.toml has ``[tool.uv.workspace]``.

    ``ZHUMENG_ROOT`` overrides; otherwise searched upwards from this file, then from the cwd.
    """
    env = os.environ.get("ZHUMENG_ROOT")
    if env:
        return Path(env).resolve()
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for d in (start, *start.parents):
            if _is_workspace_root(d):
                return d
    raise InfraError(
        "cannot find the Zhumeng workspace root (pyproject.toml with [tool.uv.workspace])"
    )


def cache_dir() -> Path:
    """``<root>/.cache`` (git-ignored); ``ZHUMENG_CACHE`` overrides. Created if missing."""
    env = os.environ.get("ZHUMENG_CACHE")
    d = Path(env).resolve() if env else repo_root() / ".cache"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _kafka_deploy_dir() -> Path:
    return repo_root() / "deploy" / "local" / "kafka"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Inter-process lock so that parallel test sessions don't fetch/build twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_tool(
    cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, what: str
) -> str:
    try:
        res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError as e:
        raise InfraError(f"{what}: {cmd[0]!r} not found on PATH") from e
    if res.returncode != 0:
        out = (res.stdout + res.stderr)[-4000:]
        raise InfraError(f"{what} failed (exit {res.returncode}): {' '.join(cmd)}\n{out}")
    return res.stdout


# --------------------------------------------------------------------------------------------
# fetching / building


def ensure_kafka_jars(log: Log = print) -> Path:
    """Return ``<cache>/kafka-<KAFKA_VERSION>/libs``, fetching the jars with Maven if missing.

    Idempotent: a marker file (holding a hash of the pom) makes the second call a stat().
    """
    base = cache_dir() / f"kafka-{KAFKA_VERSION}"
    libs = base / "libs"
    marker = base / ".complete"
    pom = _kafka_deploy_dir() / "pom.xml"
    stamp = f"{KAFKA_VERSION} {hashlib.sha256(pom.read_bytes()).hexdigest()}"

    def done() -> bool:
        return (
            marker.is_file()
            and marker.read_text().strip() == stamp
            and (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()
        )

    if done():
        return libs
    with _file_lock(cache_dir() / f"kafka-{KAFKA_VERSION}.lock"):
        if done():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise InfraError("Maven (mvn) is required to fetch the Kafka jars")
        log(f"devstack: fetching Kafka {KAFKA_VERSION} jars with Maven into {libs} ...")
        t0 = time.monotonic()
        tmp = base / "libs.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        base.mkdir(parents=True, exist_ok=True)
        _run_tool(
            [
                mvn,
                "-B",
                "-q",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-Dkafka.version={KAFKA_VERSION}",
                f"-DoutputDirectory={tmp}",
            ],
            what="mvn dependency:copy-dependencies",
        )
        if not (tmp / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
            raise InfraError(f"Maven did not produce kafka_2.13-{KAFKA_VERSION}.jar in {tmp}")
        shutil.rmtree(libs, ignore_errors=True)
        tmp.rename(libs)
        marker.write_text(stamp + "\n")
        log(f"devstack: Kafka jars ready in {time.monotonic() - t0:.1f}s")
    return libs


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOTOOLCHAIN", "local")
    env.setdefault("GOFLAGS", "-mod=mod")
    return env


def ensure_ferretdb(log: Log = print) -> Path:
    """Return the path of a FerretDB ``FERRETDB_VERSION`` binary, building it if missing.

    ``go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`` produces a binary that
    panics at start-up ("Invalid build/version/version.txt file content"): the release's
    version.txt is generated at release time and is not part of the module zip. So the module
    source is fetched with ``go mod download`` (the Go module proxy), copied to
    ``<cache>/ferretdb-<ver>/src``, given its ``version.txt``, and built with ``go build``
    into ``<cache>/ferretdb-<ver>/bin/ferretdb`` (the GOBIN ``go install`` would have used).
    """
    base = cache_dir() / f"ferretdb-{FERRETDB_VERSION}"
    binary = base / "bin" / "ferretdb"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    with _file_lock(cache_dir() / f"ferretdb-{FERRETDB_VERSION}.lock"):
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
        go = shutil.which("go")
        if go is None:
            raise InfraError("the Go toolchain (go) is required to build FerretDB")
        log(f"devstack: building FerretDB {FERRETDB_VERSION} into {binary} ...")
        t0 = time.monotonic()
        env = _go_env()
        out = _run_tool(
            [go, "mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"],
            cwd=base.parent,
            env=env,
            what="go mod download",
        )
        mod_dir = Path(json.loads(out)["Dir"])
        src = base / "src"
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(mod_dir, src)
        for root, dirs, files in os.walk(src):  # the module cache is read-only
            for n in (*dirs, *files):
                p = os.path.join(root, n)
                os.chmod(p, os.stat(p).st_mode | 0o200)
        (src / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
        (src / "build" / "version" / "package.txt").write_text("zhumeng-devstack\n")
        binary.parent.mkdir(parents=True, exist_ok=True)
        tmp_bin = binary.with_suffix(".tmp")
        _run_tool(
            [
                go,
                "build",
                "-buildvcs=false",
                "-trimpath",
                "-tags",
                FERRETDB_BUILD_TAGS,
                "-o",
                str(tmp_bin),
                "./cmd/ferretdb",
            ],
            cwd=src,
            env=env,
            what="go build ferretdb",
        )
        _run_tool([str(tmp_bin), "--version"], what="ferretdb --version")
        tmp_bin.rename(binary)
        shutil.rmtree(src, ignore_errors=True)
        log(f"devstack: FerretDB built in {time.monotonic() - t0:.1f}s")
    return binary


# --------------------------------------------------------------------------------------------
# helpers for servers


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, n_bytes: int = 6000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - n_bytes))
            return fh.read().decode("utf-8", "replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"


def _run_sync(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even if this thread runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_fn())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["v"] = asyncio.run(coro_fn())
        except BaseException as e:
            box["e"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]
    return box["v"]  # type: ignore[no-any-return]


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise InfraError("java (17+) is required to run Kafka")
    return java


_RUNNING: weakref.WeakSet[_Process] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    """Servers run in their own session, so they would outlive a caller that forgot stop()."""
    for srv in list(_RUNNING):
        with contextlib.suppress(Exception):
            srv.stop(timeout=5)


class _Process:
    """A server subprocess in its own session / process group, output appended to a log file.

    Servers still running when the Python process exits normally are stopped by an atexit hook
    (not on SIGKILL of the parent: then they are left running and must be stopped by pid).
    """

    name = "server"

    def __init__(self, log_file: Path) -> None:
        self.log_file = Path(log_file)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        return None

    def _launch(
        self, cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        if self.pid is not None:
            raise InfraError(f"{self.name} already running (pid {self.pid})")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log_fh = open(self.log_file, "ab")  # noqa: SIM115 - closed in stop()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._log_fh.write(f"\n==== {stamp} devstack start: {' '.join(cmd)}\n".encode())
        self._log_fh.flush()
        self._proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _RUNNING.add(self)

    def _check_alive(self) -> None:
        if self._proc is None:
            raise InfraError(f"{self.name} was not started")
        rc = self._proc.poll()
        if rc is not None:
            raise InfraError(
                f"{self.name} exited with code {rc}; log {self.log_file}:\n{_tail(self.log_file)}"
            )

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM the process group, wait up to ``timeout`` s, then SIGKILL."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        # children left in the group (none expected) are killed too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        self._proc = None
        _RUNNING.discard(self)

    def __enter__(self: Any) -> Any:
        self.start()
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Kafka


def _random_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class KafkaServer(_Process):
    """Single-node KRaft Kafka (broker+controller, node.id=1) on 127.0.0.1.

    ``data_dir`` holds ``server.properties`` and the log dir (``kraft-logs``); an existing data
    dir is reused (storage is formatted only once). Ports may change between runs.
    """

    name = "kafka"

    def __init__(
        self, data_dir: Path, port: int, controller_port: int, log_file: Path, partitions: int = 3
    ) -> None:
        super().__init__(log_file)
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.controller_port = controller_port
        self.partitions = partitions
        self.libs: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_dirs(self) -> Path:
        return self.data_dir / "kraft-logs"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def cluster_id(self) -> str | None:
        """The KRaft cluster id from ``meta.properties`` (None before the storage is formatted)."""
        meta = self.log_dirs / "meta.properties"
        if not meta.is_file():
            return None
        for line in meta.read_text().splitlines():
            if line.startswith("cluster.id="):
                return line.split("=", 1)[1].strip()
        return None

    def _render_properties(self) -> None:
        tmpl = string.Template((_kafka_deploy_dir() / "server.properties.tmpl").read_text())
        text = tmpl.substitute(
            port=self.port,
            controller_port=self.controller_port,
            log_dirs=str(self.log_dirs),
            partitions=self.partitions,
        )
        self.properties_file.write_text(text)

    def _jvm_common(self) -> list[str]:
        assert self.libs is not None
        log4j = _kafka_deploy_dir() / "log4j2.properties"
        return [
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.data_dir / 'logs'}",
            "-cp",
            str(self.libs / "*"),
        ]

    def _format_storage(self) -> None:
        if (self.log_dirs / "meta.properties").is_file():
            return  # reuse existing data
        cluster_id_file = self.data_dir / "cluster.id"
        if cluster_id_file.is_file():
            cluster_id = cluster_id_file.read_text().strip()
        else:
            cluster_id = _random_cluster_id()
            cluster_id_file.write_text(cluster_id + "\n")
        cmd = [
            _java(),
            *_TOOL_JVM_OPTS,
            *self._jvm_common(),
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            "-c",
            str(self.properties_file),
            "--ignore-formatted",
        ]
        _run_tool(cmd, what="kafka StorageTool format")

    def start(self) -> None:
        self.libs = ensure_kafka_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._render_properties()
        self._format_storage()
        cmd = [
            _java(),
            *KAFKA_JVM_OPTS,
            *self._jvm_common(),
            "kafka.Kafka",
            str(self.properties_file),
        ]
        self._launch(cmd, cwd=self.data_dir)

    async def _metadata_ok(self) -> bool:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        try:
            await asyncio.wait_for(admin.start(), 10)
            info = await asyncio.wait_for(admin.describe_cluster(), 10)
            # a broker of *this* cluster (not some other process on the port) with node 1 up
            return info.get("cluster_id") == self.cluster_id and any(
                b.get("node_id") == 1 for b in info.get("brokers", [])
            )
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    def wait_ready(self, timeout: float = 90) -> None:
        """Block until a real aiokafka metadata request (describe_cluster) succeeds."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            if _port_open(self.port) and _run_sync(self._metadata_ok):
                self._check_alive()
                return
            if time.monotonic() > deadline:
                raise InfraError(
                    f"kafka not ready on {self.bootstrap} after {timeout}s; log {self.log_file}:\n"
                    f"{_tail(self.log_file)}"
                )
            time.sleep(0.5)

    def stop(self, timeout: float = 20) -> None:
        super().stop(timeout)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# FerretDB


class FerretDBServer(_Process):
    """FerretDB v1 with the SQLite backend on 127.0.0.1 (telemetry and debug listener off).

    Databases live as ``<data_dir>/<db>.sqlite``; an existing data dir is reused.
    """

    name = "ferretdb"

    def __init__(self, data_dir: Path, port: int, log_file: Path) -> None:
        super().__init__(log_file)
        self.data_dir = Path(data_dir).resolve()
        self.port = port

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> None:
        binary = ensure_ferretdb()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(binary),
            "--handler=sqlite",
            f"--sqlite-url=file:{quote(str(self.data_dir))}/",
            f"--listen-addr=127.0.0.1:{self.port}",
            f"--state-dir={self.data_dir}",
            "--telemetry=disable",
            "--debug-addr=-",
            "--log-level=warn",
        ]
        self._launch(cmd, cwd=self.data_dir)

    def wait_ready(self, timeout: float = 30) -> None:
        """Block until ``{ping: 1}`` over OP_MSG answers ``ok: 1``."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            self._check_alive()
            try:
                if wire_ping("127.0.0.1", self.port):
                    self._check_alive()  # not some other server on the port
                    return
                last = "ping answered ok != 1"
            except OSError as e:
                last = str(e)
            if time.monotonic() > deadline:
                raise InfraError(
                    f"ferretdb not ready on {self.uri} after {timeout}s ({last}); "
                    f"log {self.log_file}:\n{_tail(self.log_file)}"
                )
            time.sleep(0.2)

    def stop(self, timeout: float = 10) -> None:
        super().stop(timeout)


class SecantusDBServer(FerretDBServer):
    """SecantusDB (PyPI, WiredTiger storage) as a standalone server on 127.0.0.1.

    The default local document store: unlike FerretDB v1 its single-document updates are
    atomic under concurrency, which the outbox and the atomic claims rely on (ADR 0003).
    The server is the ``secantusd-py`` script installed with the project's Python packages.
    """

    name = "secantusdb"

    def start(self) -> None:
        script = Path(sys.executable).with_name("secantusd-py")
        if not script.exists():
            raise InfraError(f"{script} not found: run `uv sync` (secantusdb is a dependency)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(script),
            "--host=127.0.0.1",
            f"--port={self.port}",
            f"--storage-path={self.data_dir}",
            "--standalone",
            "--log-level=WARNING",
        ]
        self._launch(cmd, cwd=self.data_dir)

    def wait_ready(self, timeout: float = 60) -> None:
        super().wait_ready(timeout)


DOCUMENT_SERVERS: dict[str, type[FerretDBServer]] = {
    "secantusdb": SecantusDBServer,
    "ferretdb": FerretDBServer,
}


def document_server(
    data_dir: Path, port: int, log_file: Path, kind: str | None = None
) -> FerretDBServer:
    """The MongoDB-compatible server to run locally: ``ZHUMENG_DOCDB`` = secantusdb (default)
    or ferretdb (kept for comparison; its updates are not atomic, see ADR 0003)."""
    kind = kind or os.environ.get("ZHUMENG_DOCDB", "secantusdb")
    if kind not in DOCUMENT_SERVERS:
        raise InfraError(f"ZHUMENG_DOCDB must be one of {sorted(DOCUMENT_SERVERS)}, not {kind!r}")
    return DOCUMENT_SERVERS[kind](data_dir, port, log_file)


# ---- minimal Mongo wire protocol (OP_MSG) ping, so devstack does not need pymongo ----------

_OP_MSG = 2013


def _bson_cstring(s: str) -> bytes:
    return s.encode() + b"\x00"


def _bson_doc(items: list[tuple[str, Any]]) -> bytes:
    body = b""
    for k, v in items:
        if isinstance(v, bool):
            body += b"\x08" + _bson_cstring(k) + (b"\x01" if v else b"\x00")
        elif isinstance(v, int):
            body += b"\x10" + _bson_cstring(k) + struct.pack("<i", v)
        elif isinstance(v, str):
            enc = v.encode() + b"\x00"
            body += b"\x02" + _bson_cstring(k) + struct.pack("<i", len(enc)) + enc
        else:  # pragma: no cover - not needed
            raise TypeError(type(v))
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def _bson_top_level(doc: bytes) -> dict[str, Any]:
    """Decode the scalar top-level fields of a BSON document (nested values are skipped)."""
    out: dict[str, Any] = {}
    i, end = 4, struct.unpack_from("<i", doc)[0] - 1
    fixed = {
        0x01: 8,
        0x07: 12,
        0x08: 1,
        0x09: 8,
        0x0A: 0,
        0x10: 4,
        0x11: 8,
        0x12: 8,
        0x13: 16,
        0x7F: 0,
        0xFF: 0,
    }
    while i < end:
        t = doc[i]
        j = doc.index(b"\x00", i + 1)
        key = doc[i + 1 : j].decode()
        i = j + 1
        if t == 0x01:
            out[key] = struct.unpack_from("<d", doc, i)[0]
        elif t == 0x08:
            out[key] = doc[i] == 1
        elif t == 0x10:
            out[key] = struct.unpack_from("<i", doc, i)[0]
        elif t == 0x12:
            out[key] = struct.unpack_from("<q", doc, i)[0]
        elif t == 0x02:
            n = struct.unpack_from("<i", doc, i)[0]
            out[key] = doc[i + 4 : i + 4 + n - 1].decode("utf-8", "replace")
        if t in fixed:
            i += fixed[t]
        elif t in (0x02, 0x0D, 0x0E):
            i += 4 + struct.unpack_from("<i", doc, i)[0]
        elif t in (0x03, 0x04, 0x0F):
            i += struct.unpack_from("<i", doc, i)[0]
        elif t == 0x05:
            i += 5 + struct.unpack_from("<i", doc, i)[0]
        elif t == 0x0B:  # regex: two cstrings
            i = doc.index(b"\x00", doc.index(b"\x00", i) + 1) + 1
        else:
            break
    return out


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by server")
        buf += chunk
    return buf


def wire_command(
    host: str, port: int, command: list[tuple[str, Any]], db: str = "admin", timeout: float = 3.0
) -> dict[str, Any]:
    """Send one OP_MSG command and return the scalar top-level fields of the reply."""
    doc = _bson_doc([*command, ("$db", db)])
    payload = struct.pack("<I", 0) + b"\x00" + doc  # flagBits, section kind 0
    header = struct.pack("<iiii", 16 + len(payload), 1, 0, _OP_MSG)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(header + payload)
        length, _req, _resp_to, opcode = struct.unpack("<iiii", _recv_exact(s, 16))
        body = _recv_exact(s, length - 16)
    if opcode != _OP_MSG or body[4] != 0:
        raise ConnectionError(f"unexpected reply opcode {opcode}")
    return _bson_top_level(body[5:])


def wire_ping(host: str, port: int, timeout: float = 3.0) -> bool:
    reply = wire_command(host, port, [("ping", 1)], timeout=timeout)
    return float(reply.get("ok", 0)) == 1.0


if __name__ == "__main__":  # pragma: no cover - manual smoke: python -m zhumeng_devstack.infra
    print(ensure_kafka_jars(), ensure_ferretdb(), sep="\n", file=sys.stderr)
