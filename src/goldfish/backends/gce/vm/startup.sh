#!/bin/bash
# Goldfish VM bootstrap (the instance's startup-script).
#
# Fetches the VM agent from the `goldfish-agent` metadata value (with Python's urllib: curl is
# not assumed), makes sure docker is there, then execs the agent. No metadata value is ever
# evaluated by this shell: the agent's text goes straight from the metadata server into a file.
#
# Environment: GCE_METADATA_HOST (default metadata.google.internal); GOLDFISH_AGENT_HOME, for
# sandboxes only, the folder the agent is written to (default /var/lib/goldfish).
set -euo pipefail

agent_home="${GOLDFISH_AGENT_HOME:-/var/lib/goldfish}"
mkdir -p "$agent_home"

python3 - "$agent_home/agent.py" <<'PYTHON'
import os
import sys
import time
import urllib.error
import urllib.request

target = sys.argv[1]
host = os.environ.get("GCE_METADATA_HOST") or "metadata.google.internal"
url = "http://" + host + "/computeMetadata/v1/instance/attributes/goldfish-agent"
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
request = urllib.request.Request(url, headers={"Metadata-Flavor": "Google"})
body = None
for attempt in range(30):
    try:
        with opener.open(request, timeout=10) as response:
            body = response.read()
        break
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            sys.exit("goldfish-startup: the goldfish-agent metadata value is missing")
        print("goldfish-startup: metadata server answered %d; retrying" % exc.code, file=sys.stderr)
    except OSError as exc:
        print("goldfish-startup: metadata server not reachable (%s); retrying" % exc, file=sys.stderr)
    time.sleep(2)
if not body:
    sys.exit("goldfish-startup: could not read the goldfish-agent metadata value")
partial = "%s.partial-%d" % (target, os.getpid())
with open(partial, "wb") as out:
    out.write(body)
os.chmod(partial, 0o644)
os.replace(partial, target)
PYTHON

if ! command -v docker >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        echo "goldfish-startup: installing docker.io" >&2
        if DEBIAN_FRONTEND=noninteractive apt-get update -q \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io; then
            systemctl enable --now docker >/dev/null 2>&1 || true
        else
            echo "goldfish-startup: docker.io could not be installed; the agent will report it" >&2
        fi
    else
        echo "goldfish-startup: docker is missing and apt-get is not available" >&2
    fi
fi

exec python3 "$agent_home/agent.py"
