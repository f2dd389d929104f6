#!/usr/bin/env bash
# Installs everything Zhumeng needs on a fresh machine of this kind, idempotently:
# uv, Java 17 + Maven (for the Kafka broker's jars), the Python packages (uv workspace,
# including the SecantusDB document server), and the Kafka jars (cached in .cache/).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m· %s\033[0m\n' "$*"; }

if ! command -v uv >/dev/null 2>&1; then
  say "installing uv (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check uv
fi

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing ${need_apt[*]} (Debian packages)"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  fi
fi

say "Python packages (uv sync)"
uv sync --all-packages --frozen --quiet

say "Kafka broker jars (Maven Central, cached in .cache/)"
uv run --frozen python -m zhumeng_devstack prepare
