#!/usr/bin/env bash
# Make Debian's chromium and chromium-driver available, for the dashboard's browser tests.
#
# Idempotent and instant when both are there. As root, when either is missing, it installs them
# with apt (no recommends). Everything it does is logged to $GOLDFISH_CHROMIUM_LOG (default
# /tmp/goldfish-ensure-chromium.log).
# Exit status: 0 when `chromium` and `chromedriver` are on PATH, non-zero otherwise.
set -euo pipefail

LOG=${GOLDFISH_CHROMIUM_LOG:-/tmp/goldfish-ensure-chromium.log}

say() { printf '%s ensure-chromium: %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$LOG" >&2; }

present() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }

main() {
    : >>"$LOG"
    if present; then
        return 0
    fi
    [ "$(id -u)" = 0 ] || { say "chromium or chromedriver is missing and installing them needs root"; exit 1; }
    say "installing chromium chromium-driver (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >>"$LOG" 2>&1
    # The dpkg lock may be held by another apt run (e.g. ensure-docker.sh): wait for it, bounded.
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
        chromium chromium-driver fonts-dejavu-core >>"$LOG" 2>&1
    present || { say "chromium was installed but chromium/chromedriver are not on PATH; see $LOG"; exit 1; }
    say "ready: $(chromium --version 2>/dev/null | head -n 1)"
}

main "$@"
