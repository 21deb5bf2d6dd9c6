#!/usr/bin/env bash
# Sets everything up, then builds the app and serves it on http://127.0.0.1:8080.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/tools/setup.sh"
cd "$ROOT"
echo "[serve] building (a first build takes a few minutes), then serving on http://127.0.0.1:8080"
exec trunk serve --release "$@"
