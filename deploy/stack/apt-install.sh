#!/bin/bash
# apt-install PACKAGE...: install Debian packages inside a build of deploy/stack/Dockerfile.
# With the BuildKit secret `apt_sources` (a tar of the host's /etc/apt/sources.list*), apt uses
# this machine's sources, bookworm-security included; they never land in a layer.
set -euo pipefail
opts=()
if [[ -s /run/secrets/apt_sources ]]; then
    mkdir -p /tmp/apt
    tar -xf /run/secrets/apt_sources -C /tmp/apt
    opts=(-o Dir::Etc::SourceList=/tmp/apt/sources.list -o Dir::Etc::SourceParts=/tmp/apt/sources.list.d)
fi
apt-get "${opts[@]}" update -qq
DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" install -qq -y --no-install-recommends "$@" >/dev/null
rm -rf /tmp/apt
