#!/usr/bin/env bash
# Build the local stand-in for the upstream Python base image, for machines that cannot pull.
#
# The Dockerfile's default BASE_IMAGE is the official python:3.11-slim-bookworm pinned by
# digest. Where no registry is reachable (CI here), this script builds an equivalent base from
# Debian's own signed packages: debootstrap --variant=minbase with python3, python3-venv and
# ca-certificates, imported with `docker import`. It is cached by name, so CI builds it once.
#
# Usage: deploy/docker/build-base.sh [--force]      (prints the image name on stdout)
# Env:   PINGCALC_BASE_IMAGE  image name (default pingcalc/base-python:3.11-bookworm)
#        DEBIAN_MIRROR        mirror URL (default: the first bookworm mirror in apt's sources)
set -euo pipefail

IMAGE="${PINGCALC_BASE_IMAGE:-pingcalc/base-python:3.11-bookworm}"
SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates
DOCKER="${DOCKER:-/usr/bin/docker}"

log() { printf 'build-base: %s\n' "$*" >&2; }

if [[ "${1:-}" != "--force" ]] && "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
    log "$IMAGE exists; reusing it (--force rebuilds)"
    echo "$IMAGE"
    exit 0
fi

# The mirror comes from this machine's apt configuration, never from this file: the project
# does not name a package registry. Reads deb822 (*.sources) and one-line (*.list) formats.
mirror_from_apt_sources() {
    local files=() f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] && files+=("$f")
    done
    ((${#files[@]})) || return 1
    awk -v suite="$SUITE" '
        function emit(uri) { sub(/\/+$/, "", uri); print uri; found = 1; exit }
        # one-line format: deb [opts] URI SUITE COMPONENTS...
        /^[[:space:]]*deb[[:space:]]/ {
            n = split($0, f, /[[:space:]]+/); i = 2
            if (f[i] ~ /^\[/) { while (i <= n && f[i] !~ /\]$/) i++; i++ }
            if (f[i + 1] == suite) emit(f[i])
            next
        }
        # deb822 stanzas: remember URIs and Suites, decide at the blank line or end of file
        /^URIs:/   { uris = $2 }
        /^Suites:/ { suites = " " substr($0, 8) " " }
        /^[[:space:]]*$/ { if (uris != "" && index(suites, " " suite " ")) emit(uris); uris = ""; suites = "" }
        END { if (!found && uris != "" && index(suites, " " suite " ")) print uris }
    ' "${files[@]}" | head -n1
}

MIRROR="${DEBIAN_MIRROR:-$(mirror_from_apt_sources || true)}"
if [[ -z "$MIRROR" ]]; then
    log "no $SUITE mirror in /etc/apt/sources*; set DEBIAN_MIRROR"
    exit 2
fi
command -v debootstrap >/dev/null || { log "debootstrap is not installed"; exit 2; }

ROOTFS="$(mktemp -d /var/tmp/pingcalc-base.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT
log "debootstrap $SUITE ($PACKAGES) from the apt-configured mirror into $ROOTFS"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >&2

# The apt lists and downloaded .debs are build leftovers, not part of a base image.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/tmp/*

log "importing as $IMAGE"
tar -C "$ROOTFS" --numeric-owner -c . | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "debootstrap --variant=minbase $SUITE $PACKAGES" \
    - "$IMAGE" >&2
echo "$IMAGE"
