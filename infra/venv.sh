#!/usr/bin/env bash
# Create or refresh the project-local virtualenv <repo>/.venv from infra/requirements.txt
# (+ infra/constraints.txt). Idempotent: when the stamp (hash of both files and the Python
# version) matches, it returns at once and prints nothing.
#
#   infra/venv.sh              # ensure the venv is up to date
#   infra/venv.sh --recreate   # wipe .venv and install from scratch
#
# Env: PIPAI_VENV (default <repo>/.venv), PYTHON (default python3).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PIPAI_VENV:-$REPO/.venv}"
PY="${PYTHON:-python3}"
REQ="$REPO/infra/requirements.txt"
CON="$REPO/infra/constraints.txt"
LOCAL="$REPO/.local"
STAMP="$VENV/.pipai-requirements.sha256"
LOG="$LOCAL/venv-install.log"

recreate=0
case "${1:-}" in
  --recreate) recreate=1 ;;
  "") ;;
  *) echo "usage: $0 [--recreate]" >&2; exit 2 ;;
esac

mkdir -p "$LOCAL"

want_stamp() {
  {
    cat "$REQ"
    [[ -f "$CON" ]] && cat "$CON"
    "$PY" -c 'import sys; print(sys.version)'
  } | sha256sum | cut -d' ' -f1
}

up_to_date() {
  [[ -x "$VENV/bin/python" && -f "$STAMP" ]] \
    && "$VENV/bin/python" -c 'pass' 2>/dev/null \
    && [[ "$(cat "$STAMP")" == "$(want_stamp)" ]]
}

if [[ $recreate == 0 ]] && up_to_date; then
  exit 0
fi

# Serialise concurrent callers (test scripts, moto.sh) on one lock.
exec 9>"$LOCAL/venv.lock"
flock 9
if [[ $recreate == 0 ]] && up_to_date; then
  exit 0
fi

if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null; then
  echo "venv.sh: $PY is missing or older than Python 3.9" >&2
  exit 1
fi

start=$(date +%s)
echo "venv.sh: installing tooling into ${VENV#"$REPO"/} (a few minutes the first time; log: ${LOG#"$REPO"/})" >&2

if [[ $recreate == 1 ]] || ! "$VENV/bin/python" -c 'pass' 2>/dev/null; then
  rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY" -m venv "$VENV"
fi

args=(-r "$REQ")
[[ -f "$CON" ]] && args+=(-c "$CON")
if ! PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install --quiet "${args[@]}" >"$LOG" 2>&1; then
  echo "venv.sh: pip install failed; last lines of $LOG:" >&2
  tail -n 30 "$LOG" >&2
  exit 1
fi

# cargo-lambda looks for `zig` on PATH (or `python3 -m ziglang`); give it a `zig` that is
# the venv's ziglang, so it works with or without the venv activated as long as
# .venv/bin is on PATH.
cat >"$VENV/bin/zig" <<EOF
#!/bin/sh
exec "$VENV/bin/python" -m ziglang "\$@"
EOF
chmod +x "$VENV/bin/zig"

want_stamp >"$STAMP"
echo "venv.sh: ready in $(( $(date +%s) - start ))s" >&2
