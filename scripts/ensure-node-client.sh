#!/usr/bin/env bash
# Install the TypeScript-SDK MCP client the agent-client tests drive (tests/e2e/ts_client).
#
# `npm ci` from the committed package-lock.json (exact versions of @modelcontextprotocol/sdk and
# its dependencies, from the npm registry) into tests/e2e/ts_client/node_modules (git-ignored).
# Quick and offline when node_modules already matches the lockfile (a stamp holds the lockfile's
# hash). Needs Node 20+ and npm on PATH.
# Exit status: 0 when the client is installed, non-zero otherwise (missing node/npm, npm failed).
set -euo pipefail

cd "$(dirname "$0")/../tests/e2e/ts_client"
say() { printf 'ensure-node-client: %s\n' "$*" >&2; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    say "node and npm are needed (Node 20 or later); install them and run this again"
    exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
    say "Node $(node --version) is too old: the client needs Node 20 or later"
    exit 1
fi

stamp=node_modules/.goldfish-lock-hash
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
say "installing the TypeScript MCP client from package-lock.json (npm ci)"
npm ci --no-audit --no-fund --loglevel=error
printf '%s\n' "$want" > "$stamp"
