#!/usr/bin/env bash
# docs/openapi.yaml: lint it, render it, hold the running service against it.
#
#   infra/openapi.sh lint                 openapi-spec-validator (project venv) + the drift test
#                                         (infra/tests/test_openapi_routes.py: routes in code == document)
#   infra/openapi.sh render               docs/openapi.html (Redoc, scripts inlined, no CDN at view time)
#   infra/openapi.sh render --check       fail when docs/openapi.html is not what render makes
#   infra/openapi.sh fuzz URL [ST_ARGS]   schemathesis against a running stack, every request signed
#                                         (infra/fuzz/hooks.py); extra args go to `st run`
#
# fuzz env: PIPAI_API_KEY / PIPAI_API_SECRET, or PIPAI_KEY_FILE (default
#   $PIPAI_LOCAL_DIR/demo-key.env, as infra/local.sh writes it);
#   FUZZ_SEED (default 20261125: a run is reproducible), FUZZ_MAX_EXAMPLES (per operation, default 200: about 2,000 requests, 1 minute here),
#   FUZZ_WORKERS (default 1: with 2, hypothesis hit "AST constructor recursion depth mismatch" on Python 3.11.7).
# The key's request-weight budget (1200 a minute by default) runs out during a fuzz: 429 is a
# documented answer of every operation, so the checks still hold, but fewer requests reach the
# handlers. For a thorough run start the stack with PIPAI_LOCAL_PARAMS="RequestWeightBudget=1000000".
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
DOC="docs/openapi.yaml"
HTML="docs/openapi.html"
REDOCLY_VERSION="2.77.0"
REDOCLY_DIR="$REPO/.local/redocly-$REDOCLY_VERSION"
PY="$REPO/.venv/bin/python"

usage() { sed -n '2,18p' "$0" >&2; exit 2; }

lint() {
  "$REPO/infra/venv.sh"
  "$REPO/.venv/bin/openapi-spec-validator" "$DOC"
  "$PY" -m pytest -q -p no:cacheprovider infra/tests/test_openapi_routes.py
}

redocly() {
  if [[ ! -x "$REDOCLY_DIR/node_modules/.bin/redocly" ]]; then
    command -v npm >/dev/null || { echo "openapi.sh: npm is needed to render (Node.js 20+)" >&2; exit 1; }
    echo "openapi.sh: installing @redocly/cli@$REDOCLY_VERSION into ${REDOCLY_DIR#"$REPO"/}" >&2
    mkdir -p "$REDOCLY_DIR"
    npm install --prefix "$REDOCLY_DIR" --no-audit --no-fund --loglevel=error "@redocly/cli@$REDOCLY_VERSION" >&2
  fi
  REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true "$REDOCLY_DIR/node_modules/.bin/redocly" "$@"
}

# Writes the page to $1. --inlineBundle embeds Redoc itself; the check below keeps it that way.
render_to() {
  redocly build-docs "$DOC" -o "$1" --inlineBundle --title "PipAI Backtest API" >/dev/null 2>&1 \
    || { redocly build-docs "$DOC" -o "$1" --inlineBundle; exit 1; }
  if grep -Eq '<script[^>]+src=|<link[^>]+(modulepreload|stylesheet)[^>]+https?://' "$1"; then
    echo "openapi.sh: $1 loads a script or stylesheet from the network at view time" >&2
    exit 1
  fi
}

render() {
  if [[ "${1:-}" == "--check" ]]; then
    local tmp
    tmp="$(mktemp --suffix=.html)"
    render_to "$tmp"
    if ! cmp -s "$tmp" "$HTML"; then
      rm -f "$tmp"
      echo "openapi.sh: $HTML is stale; run infra/openapi.sh render and commit it" >&2
      exit 1
    fi
    rm -f "$tmp"
    echo "$HTML is up to date"
  else
    render_to "$HTML"
    echo "wrote $HTML ($(du -k "$HTML" | cut -f1) KiB)"
  fi
}

fuzz() {
  local url="${1:-}"
  [[ -n "$url" ]] || usage
  shift
  "$REPO/infra/venv.sh"
  if [[ -z "${PIPAI_API_KEY:-}" || -z "${PIPAI_API_SECRET:-}" ]]; then
    local keyfile="${PIPAI_KEY_FILE:-${PIPAI_LOCAL_DIR:-$REPO/.local}/demo-key.env}"
    [[ -f "$keyfile" ]] || { echo "openapi.sh: set PIPAI_API_KEY/PIPAI_API_SECRET or PIPAI_KEY_FILE" >&2; exit 1; }
    # shellcheck disable=SC1090
    . "$keyfile"
  fi
  export PIPAI_API_KEY PIPAI_API_SECRET
  # The hooks make their own fixtures (a stored strategy, real jobs to compare) at this URL.
  export PIPAI_FUZZ_URL="$url"
  local seed="${FUZZ_SEED:-20261125}" examples="${FUZZ_MAX_EXAMPLES:-200}" workers="${FUZZ_WORKERS:-1}"
  local reports="${PIPAI_LOCAL_DIR:-$REPO/.local}/fuzz"
  mkdir -p "$reports"
  local args=(
    run "$REPO/$DOC" --url "$url"
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,use_after_free,ensure_resource_availability
    --mode all --phases examples,coverage,fuzzing,stateful
    --max-examples "$examples" --seed "$seed" --workers "$workers" --continue-on-failure
    --request-timeout 30 --suppress-health-check too_slow,filter_too_much
    --generation-database none
    --report junit,ndjson --report-dir "$reports"
    "$@"
  )
  echo "==> schemathesis ${args[*]}"
  echo "    seed $seed; reports in ${reports#"$REPO"/}"
  local start status=0
  start=$(date +%s)
  # Run from the reports directory: Schemathesis keeps a `.schemathesis/` directory in its cwd.
  (cd "$reports" && SCHEMATHESIS_HOOKS=infra.fuzz.hooks PYTHONPATH="$REPO" "$REPO/.venv/bin/st" "${args[@]}") || status=$?
  echo "    $(( $(date +%s) - start ))s"
  if [[ $status != 0 ]]; then
    echo "FAILED (seed $seed). Reproduce:"
    echo "  FUZZ_SEED=$seed FUZZ_MAX_EXAMPLES=$examples FUZZ_WORKERS=$workers infra/openapi.sh fuzz $url $*"
  fi
  return $status
}

case "${1:-}" in
  lint) lint ;;
  render) shift; render "$@" ;;
  fuzz) shift; fuzz "$@" ;;
  *) usage ;;
esac
