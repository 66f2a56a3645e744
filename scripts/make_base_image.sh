#!/usr/bin/env bash
# Build a stand-in for python:3.11-slim-bookworm without a container registry.
#
#   sudo scripts/make_base_image.sh [TAG]        # default tag: audio-orchestrator/base:bookworm
#
# debootstrap lays a minimal Debian bookworm (python3 3.11, pip, venv, ca-certificates) into a
# folder and `docker import` turns it into an image. The host's CA bundle goes into the image
# because registries here are reached through TLS inspection: without it pip in a container
# fails certificate verification. The Dockerfile builds on it with
# `--build-arg BASE_IMAGE=<TAG>` (make compose-up passes it). Idempotent: an existing image
# with the same tag is kept unless FORCE=1.
set -euo pipefail

TAG="${1:-audio-orchestrator/base:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "base image $TAG exists (FORCE=1 rebuilds it)"
    exit 0
fi
if ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi
[ -r "$CA_BUNDLE" ] || {
    echo "CA bundle $CA_BUNDLE not readable (set CA_BUNDLE)" >&2
    exit 1
}

ROOTFS="$(mktemp -d /tmp/ao-base.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT

debootstrap --variant=minbase \
    --include=python3,python3-pip,python3-venv,ca-certificates,curl \
    bookworm "$ROOTFS" "$MIRROR" >/dev/null

# What python:3.11-slim-bookworm users expect: `python` and `pip` on PATH, pip allowed to
# install into the system interpreter (Debian's PEP 668 marker removed), no apt lists.
ln -sf /usr/bin/python3 "$ROOTFS/usr/local/bin/python"
ln -sf /usr/bin/pip3 "$ROOTFS/usr/local/bin/pip"
rm -f "$ROOTFS"/usr/lib/python3*/EXTERNALLY-MANAGED
# Kept outside /etc/ssl/certs too: an apt-get install of ca-certificates in a later layer
# regenerates that bundle from Debian's list, which lacks the inspection CA.
install -m 0644 "$CA_BUNDLE" "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
install -m 0644 "$CA_BUNDLE" "$ROOTFS/usr/local/share/ca-certificates/host-bundle.crt"
install -m 0644 "$CA_BUNDLE" "$ROOTFS/etc/ssl/host-ca-bundle.pem"
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/archives/*.deb

tar -C "$ROOTFS" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/host-ca-bundle.pem' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/host-ca-bundle.pem' \
    --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/host-ca-bundle.pem' \
    --change 'CMD ["python3"]' \
    - "$TAG" >/dev/null
echo "built $TAG ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
