#!/usr/bin/env bash
# Fuzzes the API with schemathesis against its own OpenAPI document (GET /api/openapi.json).
#
# Starts the mock upstream and llmeta (debug build, SQLite in a temp dir) on free ports, makes a user and an
# API key with the CLI, and runs schemathesis with that key for at most SCHEMATHESIS_MAX_TIME seconds. Fails on
# any 5xx and on any response that does not match the document. Installs schemathesis (pinned in
# requirements.txt beside this file) into .venv-schemathesis/.
#
#   tests/schemathesis/run.sh                     # what CI runs
#   SCHEMATHESIS_MAX_TIME=300 SCHEMATHESIS_SEED=7 SCHEMATHESIS_CHECKS=all tests/schemathesis/run.sh
#   SCHEMATHESIS_KEEP_LOG=/tmp/app.log LLMETA_LOG=info tests/schemathesis/run.sh   # keep the server log
set -euo pipefail
cd "$(dirname "$0")/../.."

MAX_TIME="${SCHEMATHESIS_MAX_TIME:-75}"
# A fixed seed keeps CI runs alike; change it (or the time) to explore further.
SEED="${SCHEMATHESIS_SEED:-20261201}"
CHECKS="${SCHEMATHESIS_CHECKS:-not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance}"
VENV=.venv-schemathesis

# Made again only when tests/schemathesis/requirements.txt (the pinned version) changed.
if [ ! -x "$VENV/bin/schemathesis" ] || ! cmp -s tests/schemathesis/requirements.txt "$VENV/requirements.txt"; then
  echo "== installing schemathesis into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/schemathesis/requirements.txt
  cp tests/schemathesis/requirements.txt "$VENV/requirements.txt"
fi

# LLMETA_BIN_DIR: binaries built beforehand (skips the build here).
if [ -n "${LLMETA_BIN_DIR:-}" ]; then
  BIN="$LLMETA_BIN_DIR"
else
  cargo build --quiet --bin llmeta --bin llmeta-mock
  BIN=target/debug
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Waits (bounded) until `url` answers 200.
wait_for() {
  for _ in $(seq 1 300); do
    if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "$1 did not come up; logs:" >&2
  cat "$work"/*.log >&2
  return 1
}

mock_port=$(free_port)
app_port=$(free_port)
export LLMETA_DATA_DIR="$work/data"
export LLMETA_BIND="127.0.0.1:$app_port"
export LLMETA_SECRET_KEY="schemathesis-secret-key-0123456789abcdef"
export API_URL="http://127.0.0.1:$mock_port/v1"
export API_KEY="sk-mock-schemathesis"
export LLMETA_MODELS="mock-small"
export LLMETA_LOG="${LLMETA_LOG:-warn}"
mkdir -p "$LLMETA_DATA_DIR"

"$BIN/llmeta-mock" --bind "127.0.0.1:$mock_port" >"$work/mock.log" 2>&1 &
pids+=($!)

email=fuzz@example.com
echo "a long enough password for fuzzing" | "$BIN/llmeta" user create --email "$email" --password-stdin >/dev/null 2>&1
key=$("$BIN/llmeta" key create --email "$email" --name schemathesis 2>/dev/null | tail -1)

"$BIN/llmeta" serve >"$work/app.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$mock_port/v1/models"
wait_for "http://127.0.0.1:$app_port/health"

echo "== schemathesis ($MAX_TIME s, seed $SEED)"
status=0
"$VENV/bin/schemathesis" --config-file tests/schemathesis/schemathesis.toml run "http://127.0.0.1:$app_port/api/openapi.json" \
  --checks "$CHECKS" \
  --header "Authorization: Bearer $key" \
  --max-time "$MAX_TIME" \
  --seed "$SEED" \
  --workers 1 \
  --request-timeout 30 \
  --no-color \
  --report junit --report-dir "$work/report" || status=$?
if [ "$status" -ne 0 ]; then
  echo "== schemathesis failed; server log (errors):" >&2
  grep -iE "error|panic" "$work/app.log" | tail -n 50 >&2 || true
fi
if [ -n "${SCHEMATHESIS_KEEP_LOG:-}" ]; then
  cp "$work/app.log" "$SCHEMATHESIS_KEEP_LOG"
fi
exit "$status"
