#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io and start dockerd when none
# runs (a fresh CI machine has no systemd). Also installs debootstrap for the local base image.
#   sudo scripts/ensure_docker.sh
set -euo pipefail

if docker info >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
if ! command -v dockerd >/dev/null; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        docker.io debootstrap >/dev/null
fi
if ! pgrep -x dockerd >/dev/null; then
    LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
    # setsid: the engine outlives the make/pytest process that started it.
    $SUDO setsid dockerd >>"$LOG" 2>&1 < /dev/null &
fi
for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && exit 0
    sleep 1
done
echo "dockerd did not answer within 60 s (log: ${DOCKERD_LOG:-/var/log/dockerd.log})" >&2
exit 1
