#!/usr/bin/env bash
# Runs pytest from the project venv with the given arguments, then prints one line
# `N passed, N failed` (the line infra/test.sh and infra/test_infra.sh count). Errors count as
# failed; so does a run that collected no test (pytest's exit 5) or stopped for another reason.
# Exits with pytest's status.
#
#   infra/pytest.sh -q infra/tests/test_local_gateway.py
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$REPO/infra/venv.sh" || { echo "0 passed, 1 failed"; exit 1; }
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
"$REPO/.venv/bin/python" -m pytest -p no:cacheprovider --junitxml="$report" "$@"
rc=$?
"$REPO/.venv/bin/python" - "$report" "$rc" <<'PY'
import sys
import xml.etree.ElementTree as ET

report, rc = sys.argv[1], int(sys.argv[2])
try:
    root = ET.parse(report).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    count = lambda k: sum(int(s.get(k, 0)) for s in suites)  # noqa: E731
    tests, failed, skipped = count("tests"), count("failures") + count("errors"), count("skipped")
except (OSError, ET.ParseError):
    tests = failed = skipped = 0
passed = tests - failed - skipped
if rc != 0 and failed == 0:
    failed = 1  # no test collected (5), interrupted (2), internal or usage error (3, 4)
print(f"{passed} passed, {failed} failed")
PY
exit $rc
