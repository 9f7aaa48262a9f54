#!/usr/bin/env bash
# CycloneDX SBOM of the Python environment inside a built image (what actually ships).
#
# Usage: deploy/docker/sbom.sh IMAGE OUT.json
# The image's /opt/venv is copied out (docker create + docker cp; nothing runs in the image),
# grafted onto a throwaway host venv of the same Python minor version, and read by
# `cyclonedx-py environment` (the cyclonedx-bom package in .venv).
set -euo pipefail

IMAGE="${1:?usage: sbom.sh IMAGE OUT.json}"
OUT="${2:?usage: sbom.sh IMAGE OUT.json}"
DOCKER="${DOCKER:-/usr/bin/docker}"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
CYCLONEDX="${CYCLONEDX:-$REPO/.venv/bin/cyclonedx-py}"
HOST_PYTHON="${HOST_PYTHON:-$REPO/.venv/bin/python}"

WORK="$(mktemp -d)"
CID=""
cleanup() { [[ -n "$CID" ]] && "$DOCKER" rm -f "$CID" >/dev/null 2>&1; rm -rf "$WORK"; }
trap cleanup EXIT

CID="$("$DOCKER" create "$IMAGE")"
"$DOCKER" cp "$CID:/opt/venv/lib" "$WORK/image-lib"
IMAGE_PY="$(basename "$(ls -d "$WORK"/image-lib/python3.*)")"
HOST_PY="python$("$HOST_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ "$IMAGE_PY" != "$HOST_PY" ]]; then
    echo "sbom: image has $IMAGE_PY, host has $HOST_PY; need the same minor version" >&2
    exit 2
fi

# A venv without pip, whose site-packages is the image's.
"$HOST_PYTHON" -m venv --without-pip "$WORK/venv"
rm -rf "$WORK/venv/lib/$HOST_PY/site-packages"
cp -a "$WORK/image-lib/$IMAGE_PY/site-packages" "$WORK/venv/lib/$HOST_PY/site-packages"

mkdir -p "$(dirname "$OUT")"
"$CYCLONEDX" environment --pyproject "$REPO/pyproject.toml" --of JSON --output-reproducible \
    -o "$OUT" "$WORK/venv/bin/python"
echo "sbom: wrote $OUT for $IMAGE" >&2
