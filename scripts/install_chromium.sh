#!/usr/bin/env bash
# The web console's browser tests drive Debian's Chromium (/usr/bin/chromium) through
# Playwright; no browser is downloaded. Installs it with apt-get when missing (as root),
# else says what to run. Idempotent.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "the console tests need Debian's Chromium: sudo apt-get install -y chromium chromium-driver" >&2
  exit 1
fi
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
