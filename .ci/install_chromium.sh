#!/usr/bin/env bash
# Installs Debian's Chromium for the report tests (tests/test_report.py renders reports in it headless).
# Does nothing when /usr/bin/chromium is already there.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q || true  # a stale package list is retried below
$SUDO apt-get install -y -q --no-install-recommends chromium
/usr/bin/chromium --version
