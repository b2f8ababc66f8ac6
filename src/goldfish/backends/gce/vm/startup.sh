#!/bin/bash
# Goldfish VM bootstrap (the instance's startup-script).
#
# Fetches the VM agent from the `goldfish-agent` metadata value (with Python's urllib: curl is
# not assumed), makes sure docker is there, then execs the agent. The value is the agent's zip
# application in base64; it is decoded and checked to be a zip archive before it is written.
# No metadata value is ever evaluated by this shell: it goes from the metadata server into a file.
#
# Environment: GCE_METADATA_HOST (default metadata.google.internal); GOLDFISH_AGENT_HOME, for
# sandboxes only, the folder the agent is written to (default /var/lib/goldfish).
set -euo pipefail

agent_home="${GOLDFISH_AGENT_HOME:-/var/lib/goldfish}"
mkdir -p "$agent_home"

python3 - "$agent_home/agent.pyz" <<'PYTHON'
import base64
import binascii
import io
import os
import sys
import time
import urllib.error
import urllib.request
import zipfile

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
try:
    archive = base64.b64decode(b"".join(body.split()), validate=True)
except (binascii.Error, ValueError):
    sys.exit("goldfish-startup: the goldfish-agent metadata value is not base64")
if not zipfile.is_zipfile(io.BytesIO(archive)):
    sys.exit("goldfish-startup: the goldfish-agent metadata value is not a zip application")
partial = "%s.partial-%d" % (target, os.getpid())
with open(partial, "wb") as out:
    out.write(archive)
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

exec python3 "$agent_home/agent.pyz"
