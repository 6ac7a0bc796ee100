#!/usr/bin/env bash
# End-to-end check of the local infrastructure tooling:
#   venv -> cfn-lint (+ sam validate --lint) -> static template contract -> moto on a free
#   port -> create_resources.py twice (idempotent) -> every table/queue/bucket checked
#   against template.yaml and moto behaviour probes (DLQ redrive, streams, TTL), both under pytest
#   (infra/check_resources.py) -> moto stopped.
# Prints `N passed, N failed` last; exits non-zero when anything failed.
# Leaves .local/env alone (writes its env file to a temporary directory).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PIPAI_VENV:-$REPO/.venv}"
PY="$VENV/bin/python"
TMP="$(mktemp -d)"
passed=0
failed=0
port=""

pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [[ -f "$TMP/out" ]] && sed 's/^/    /' "$TMP/out" | tail -n 30; }
# step NAME CMD... : run CMD, output kept in $TMP/out
step() {
  local name="$1"; shift
  if "$@" >"$TMP/out" 2>&1; then pass "$name"; return 0; else fail "$name"; return 1; fi
}
# add the counts of the `N passed, N failed` line in file $1, and print the rest of it
add_counts() {
  grep -Ev '^[0-9]+ passed, [0-9]+ failed$' "$1"
  local p f
  read -r p f < <(awk '/^[0-9]+ passed, [0-9]+ failed$/ { p = $1; f = $3 } END { print p + 0, f + 0 }' "$1")
  passed=$((passed + p)); failed=$((failed + f))
}
finish() {
  if [[ -n "$port" ]]; then
    MOTO_PORT="$port" "$REPO/infra/moto.sh" stop >/dev/null 2>&1 || true
  fi
  rm -rf "$TMP"
  echo "$passed passed, $failed failed"
  [[ $failed == 0 ]]
}
trap 'finish; exit $?' EXIT

cd "$REPO"

if ! step "venv ready (infra/venv.sh)" "$REPO/infra/venv.sh"; then
  exit 1
fi

step "cfn-lint template.yaml" "$VENV/bin/cfn-lint" template.yaml
step "cfn-lint template.yaml (informational checks too)" "$VENV/bin/cfn-lint" --include-checks I -- template.yaml
if [[ -x "$VENV/bin/sam" ]]; then
  step "sam validate --lint" env SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 \
    "$VENV/bin/sam" validate --lint -t template.yaml
fi

"$PY" infra/check_template.py >"$TMP/static.txt" 2>&1
rc=$?
add_counts "$TMP/static.txt"
[[ $rc != 0 ]] && ! grep -q '^FAIL ' "$TMP/static.txt" && fail "check_template.py crashed"

port="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
if ! step "moto starts on 127.0.0.1:$port" env MOTO_PORT="$port" "$REPO/infra/moto.sh" start; then
  port=""
  exit 1
fi

step "create_resources.py (first run)" \
  "$PY" infra/create_resources.py --port "$port" --env-file "$TMP/env1"
cp "$TMP/out" "$TMP/run1.out"
step "create_resources.py (second run)" \
  "$PY" infra/create_resources.py --port "$port" --env-file "$TMP/env2"
if grep -Eq '^created ' "$TMP/out"; then
  fail "second run changed nothing (idempotent)"
else
  pass "second run changed nothing (idempotent)"
fi
step "second run wrote the same env file" cmp "$TMP/env1" "$TMP/env2"
n_created=$(grep -c '^created  \(table\|queue\|bucket\)' "$TMP/run1.out" || true)
n_declared=$("$PY" -c 'import sys; sys.path.insert(0, "infra"); import create_resources as cr; print(len(cr.managed_resources(cr.load_template(cr.DEFAULT_TEMPLATE))))')
if [[ "$n_created" == "$n_declared" ]]; then
  pass "first run created all $n_declared declared tables/queues/buckets"
else
  fail "first run created $n_created of $n_declared declared tables/queues/buckets"
fi

MOTO_PORT="$port" PIPAI_ENV_FILE="$TMP/env1" "$REPO/infra/pytest.sh" -q -rP infra/check_resources.py \
  >"$TMP/check.txt" 2>&1
add_counts "$TMP/check.txt"

test_port="$port"
step "moto stops" env MOTO_PORT="$port" "$REPO/infra/moto.sh" stop && port=""
# The log of a passing run's throwaway server is of no use; a failing run keeps it.
[[ $failed == 0 ]] && rm -f "$REPO/.local/moto-$test_port.log"
