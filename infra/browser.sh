#!/usr/bin/env bash
# Makes sure Debian's Chromium is at /usr/bin/chromium for the browser tests
# (infra/tests/test_report_browser.py drives it through Playwright; Playwright never downloads a
# browser here). Installs the `chromium` package when it is missing (needs root: apt-get);
# idempotent, and prints nothing when Chromium is already there.
#
#   infra/browser.sh
set -euo pipefail

[[ -x /usr/bin/chromium ]] && exit 0
if [[ $(id -u) != 0 ]]; then
  echo "browser.sh: /usr/bin/chromium is missing; install Debian's chromium package (as root: apt-get install -y chromium)" >&2
  exit 1
fi
echo "browser.sh: installing Debian's chromium (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null
[[ -x /usr/bin/chromium ]] || { echo "browser.sh: apt-get ran but /usr/bin/chromium is still missing" >&2; exit 1; }
echo "browser.sh: $(/usr/bin/chromium --version 2>/dev/null)" >&2
