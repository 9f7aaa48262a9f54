#!/bin/bash
# apt-install [--user NAME:ID:HOME] PACKAGE...: install Debian packages inside a build of
# deploy/stack/Dockerfile. --user first creates the system user and group NAME with the fixed
# uid/gid ID: a package creates its service user only if missing, with the next free id, which
# could be any host account's (deploy/stack/compose.yaml says why the ids are fixed).
# With the BuildKit secret `apt_sources` (a tar of the host's /etc/apt/sources.list*), apt uses
# this machine's sources, bookworm-security included; they never land in a layer.
set -euo pipefail
if [[ "${1:-}" == --user ]]; then
    IFS=: read -r name id home <<<"$2"
    shift 2
    groupadd --system --gid "$id" "$name"
    useradd --system --uid "$id" --gid "$id" --home-dir "$home" --no-create-home \
        --shell /usr/sbin/nologin "$name"
fi
opts=()
if [[ -s /run/secrets/apt_sources ]]; then
    mkdir -p /tmp/apt
    tar -xf /run/secrets/apt_sources -C /tmp/apt
    opts=(-o Dir::Etc::SourceList=/tmp/apt/sources.list -o Dir::Etc::SourceParts=/tmp/apt/sources.list.d)
fi
apt-get "${opts[@]}" update -qq
DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" install -qq -y --no-install-recommends "$@" >/dev/null
rm -rf /tmp/apt
