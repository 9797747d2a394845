#!/bin/sh
# Build a python:3.11-slim stand-in from the Debian archive, for machines that reach
# deb.debian.org but no container registry. Needs mmdebstrap and podman (run as root).
#   deploy/base-image.sh [TAG] [podman options...]
#   podman build --build-arg PYTHON_IMAGE=localhost/debian-python:bookworm -t llm-proxy .
set -eu
tag="${1:-localhost/debian-python:bookworm}"
[ $# -gt 0 ] && shift
tar="$(mktemp -d)/rootfs.tar"
trap 'rm -rf "$(dirname "$tar")"' EXIT
mmdebstrap --quiet --variant=minbase \
  --include=python3,python3-venv,ca-certificates \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  bookworm "$tar" http://deb.debian.org/debian
podman "$@" import --change 'CMD ["python3"]' "$tar" "$tag"
