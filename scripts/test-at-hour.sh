#!/usr/bin/env bash
# Runs the tests with every process's clock moved to a chosen hour, Asia/Shanghai time
# (libfaketime, from Debian's packages, cached in .cache/). Volunteers' availability, offers,
# check-in and quiet hours all depend on the hour: a test that passes in the afternoon and
# fails at night is a defect this finds before CI does.
#   scripts/test-at-hour.sh 23                 # the whole suite from 23:00 Shanghai time
#   scripts/test-at-hour.sh 2 -m integration   # any pytest arguments after the hour
set -euo pipefail
cd "$(dirname "$0")/.."

hour=${1:?"the hour to start at, 0-23, Asia/Shanghai"}
shift
[[ "$hour" =~ ^([01]?[0-9]|2[0-3])$ ]] || { echo "hour must be 0-23, not $hour" >&2; exit 2; }

lib_dir=.cache/libfaketime
lib="$lib_dir/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
if [ ! -f "$lib" ]; then
  echo "· libfaketime (Debian package, cached in $lib_dir)"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq libfaketime >/dev/null 2>&1)
  mkdir -p "$lib_dir"
  dpkg -x "$tmp"/libfaketime_*.deb "$lib_dir"
  rm -rf "$tmp"
fi

# minutes from now to the next $hour:00 in Shanghai (the clock then runs on from there)
now_min=$(( 10#$(TZ=Asia/Shanghai date +%H) * 60 + 10#$(TZ=Asia/Shanghai date +%M) ))
ahead=$(( (hour * 60 - now_min + 24 * 60) % (24 * 60) ))
echo "· clocks moved ${ahead} min ahead: tests start at $(printf '%02d' "$hour"):00 Asia/Shanghai"

# a shift forward only (never back): the Go document server keeps the real clock, and a
# record stamped in its future is harmless where one in its past could be expired
LD_PRELOAD="$PWD/$lib" FAKETIME="+${ahead}m" uv run --frozen pytest "$@"
