"""Container health check: GET /healthz on the service's own port (liveness, not readiness).

Used by the Dockerfile's HEALTHCHECK and the compose file. Standard library only, so the
slim image needs no curl. Exit 0 = healthy, 1 = unhealthy.
"""

from __future__ import annotations

import os
import sys
import urllib.request

DEFAULT_PORTS = {"catalog": 8001, "requests": 8002, "matching": 8003, "notify": 8004}


def main() -> int:
    service = os.environ.get("SERVICE", "")
    port = os.environ.get("ZHUMENG_HTTP_PORT") or str(DEFAULT_PORTS.get(service, 8000))
    path = sys.argv[1] if len(sys.argv) > 1 else "/healthz"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return 0 if resp.status == 200 else 1
    except Exception as exc:  # connection refused, timeout, HTTP error
        print(f"{service} {path} unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
