"""`python -m zhumeng_devstack up [--fresh]`: the whole platform on this machine.

Readable progress while it starts, health-checked before it says ready, URLs and demo
tokens printed; Ctrl-C stops everything cleanly. A second run reuses caches and data.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time

from .stack import SERVICES, Platform, StackConfig


def _say(line: str) -> None:
    # the terminal or a pipe may be gone (e.g. `| tee` got Ctrl-C): keep stopping regardless
    with contextlib.suppress(OSError):
        print(line, flush=True)


def demo_tokens() -> dict[str, str]:
    from zhumeng_kit.auth import mint_token
    from zhumeng_kit.settings import ServiceSettings

    secret = ServiceSettings().jwt_secret
    return {
        "resident (res_demo)": mint_token(secret, "res_demo", ["resident"]),
        "volunteer (vol_0001)": mint_token(secret, "vol_0001", ["volunteer"]),
        "coordinator (county)": mint_token(secret, "coord_county", ["coordinator"]),
        "admin": mint_token(secret, "admin", ["admin"]),
    }


def prepare() -> None:
    from .infra import ensure_ferretdb, ensure_kafka_jars

    ensure_kafka_jars(_say)
    if os.environ.get("ZHUMENG_DOCDB") == "ferretdb":
        ensure_ferretdb(_say)


def up(fresh: bool) -> int:
    config = StackConfig.from_env()
    platform = Platform(config, log=_say)
    if fresh:
        _say(f"· --fresh: wiping {config.data_dir}")
        platform.wipe()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started = time.monotonic()
    try:
        platform.start_infra()
        platform.start_services()
        _say(f"\nZhumeng is up in {time.monotonic() - started:.0f}s.")
        for name in SERVICES:
            _say(f"  {name:<9} {platform.url(name)}/docs")
        _say(f"  kafka     {platform.kafka.bootstrap}")
        _say(f"  mongodb   {platform.mongo.uri}")
        _say(
            f"  mail      smtp://127.0.0.1:{config.smtp_port} (messages in {platform.mail.folder})"
        )
        _say(f"  logs      {config.data_dir / 'logs'}")
        _say("\nDemo tokens (12 h; mint more with `uv run zhumeng-token SUBJECT --role ROLE`):")
        for who, token in demo_tokens().items():
            _say(f"  {who}: {token}")
        _say("\nTry: see README 'Use it'. Ctrl-C stops everything.")
        while not stop.wait(1.0):
            for svc in platform.services.values():
                if svc.proc is not None and svc.proc.poll() is not None:
                    _say(f"! {svc.name} exited ({svc.proc.returncode}); restarting")
                    platform.start_service(svc.name)
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        _say(f"\n✗ start failed: {exc}")
        return 1
    finally:
        _say("· stopping…")
        platform.stop()
        _say("· stopped")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m zhumeng_devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start the platform and wait for Ctrl-C")
    p_up.add_argument("--fresh", action="store_true", help="wipe local data first")
    sub.add_parser("prepare", help="fetch and build what the stack runs (cached)")
    args = parser.parse_args()
    if args.command == "up":
        sys.exit(up(args.fresh))
    if args.command == "prepare":
        prepare()


if __name__ == "__main__":
    main()
