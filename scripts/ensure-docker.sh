#!/usr/bin/env bash
# Make a local Docker engine and the stage base images available, for the docker tests.
#
# Idempotent and quick when everything is there already. As root, with no reachable engine, it:
#   1. installs Debian's docker.io (apt) when dockerd is missing;
#   2. starts dockerd in the background (overlay2, falling back to vfs and then to no iptables)
#      in its own session (it outlives the caller) and waits (bounded) until it answers;
#   3. builds goldfish-debian-python:bookworm without any registry: debootstrap a minimal
#      bookworm with python3, pip and numpy, then `docker import` it (skipped when it exists);
#   4. builds goldfish-base:latest from the repository's Dockerfile on top of it (layer cache:
#      about a second when nothing changed);
#   5. installs Debian's docker-registry (apt) for the GCE simulator's loopback image registry
#      (a no-op when /usr/bin/docker-registry exists; the tests start their own registry, so the
#      package's service is kept from starting; a failure here is logged, not fatal).
# Everything it does is logged to $GOLDFISH_DOCKER_LOG (default /tmp/goldfish-ensure-docker.log).
# Exit status: 0 when the engine answers and both images exist, non-zero otherwise.
set -euo pipefail

cd "$(dirname "$0")/.."
LOG=${GOLDFISH_DOCKER_LOG:-/tmp/goldfish-ensure-docker.log}
PYTHON_IMAGE=${GOLDFISH_PYTHON_IMAGE:-goldfish-debian-python:bookworm}
BASE_IMAGE=${GOLDFISH_BASE_IMAGE:-goldfish-base:latest}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
WAIT_SECONDS=${GOLDFISH_DOCKERD_WAIT:-60}

say() { printf '%s ensure-docker: %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$LOG" >&2; }

engine_up() { docker info >/dev/null 2>&1; }

wait_for_engine() { # pid of dockerd
    local i
    for ((i = 0; i < WAIT_SECONDS * 4; i++)); do
        engine_up && return 0
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.25
    done
    return 1
}

apt_install() {
    say "installing $* (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >>"$LOG" 2>&1
    apt-get install -y -qq --no-install-recommends "$@" >>"$LOG" 2>&1
}

start_engine() {
    if ! command -v dockerd >/dev/null 2>&1; then
        [ "$(id -u)" = 0 ] || { say "dockerd is missing and installing it needs root"; return 1; }
        apt_install docker.io
    fi
    [ "$(id -u)" = 0 ] || { say "the engine is down and starting dockerd needs root"; return 1; }
    local flags pid
    for flags in "--storage-driver=overlay2" "--storage-driver=vfs" \
        "--storage-driver=vfs --iptables=false --ip-masq=false"; do
        say "starting dockerd $flags"
        # shellcheck disable=SC2086 # the flags are words on purpose
        setsid nohup dockerd $flags >>"$LOG" 2>&1 </dev/null &
        pid=$!
        if wait_for_engine "$pid"; then
            say "dockerd is up (pid $pid)"
            return 0
        fi
        say "dockerd $flags did not come up; see $LOG"
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        rm -f /var/run/docker.pid
    done
    return 1
}

build_python_image() {
    docker image inspect "$PYTHON_IMAGE" >/dev/null 2>&1 && return 0
    [ "$(id -u)" = 0 ] || { say "building $PYTHON_IMAGE with debootstrap needs root"; return 1; }
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    local rootfs
    rootfs=$(mktemp -d /tmp/goldfish-rootfs.XXXXXX)
    say "debootstrap bookworm (python3, pip, numpy) into $rootfs"
    debootstrap --variant=minbase --include=python3,python3-pip,python3-numpy \
        bookworm "$rootfs" "$MIRROR" >>"$LOG" 2>&1
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    say "docker import $PYTHON_IMAGE"
    tar -C "$rootfs" -c . | docker import --change 'CMD ["python3"]' - "$PYTHON_IMAGE" >>"$LOG"
    rm -rf "$rootfs"
}

build_base_image() {
    say "docker build $BASE_IMAGE (FROM $PYTHON_IMAGE)"
    DOCKER_BUILDKIT=0 docker build --build-arg "BASE=$PYTHON_IMAGE" -t "$BASE_IMAGE" - <Dockerfile >>"$LOG" 2>&1
}

ensure_registry() {
    [ -x /usr/bin/docker-registry ] && return 0
    [ "$(id -u)" = 0 ] || { say "docker-registry is missing and installing it needs root"; return 1; }
    local policy=/usr/sbin/policy-rc.d added=0
    if [ ! -e "$policy" ]; then # keep the package's own service from starting
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added=1
    fi
    local status=0
    apt_install docker-registry || status=$?
    [ "$added" = 1 ] && rm -f "$policy"
    return "$status"
}

main() {
    : >>"$LOG"
    if ! engine_up; then
        start_engine || { say "no Docker engine; see $LOG"; exit 1; }
    fi
    build_python_image || { say "could not build $PYTHON_IMAGE; see $LOG"; exit 1; }
    build_base_image || { say "could not build $BASE_IMAGE; see $LOG"; exit 1; }
    ensure_registry || say "could not install docker-registry (the registry tests skip); see $LOG"
    say "ready: $(docker version --format '{{.Server.Version}}' 2>/dev/null), $PYTHON_IMAGE, $BASE_IMAGE"
}

main "$@"
