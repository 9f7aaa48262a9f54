#!/usr/bin/env bash
# Create the two Secrets of Redis authentication for the Kubernetes base:
#
#   pingcalc-redis         users.acl (SHA-256 hashes of the passwords; `default` off) and
#                          probe.password (the readiness probe's PING-only user)
#   pingcalc-redis-client  rate_limit_storage: redis://pingcalc:<password>@pingcalc-redis:6379/0?...
#
#   deploy/kubernetes/redis-secrets.sh | kubectl apply -f -      # or: ... > for kubeseal/SOPS
#
# Prints the two Secret manifests on stdout (namespace $NAMESPACE, default pingcalc). The
# passwords are generated here (256 bits each), written only to a private temporary directory
# that is removed on exit, and never appear in a command line. Running it again makes new
# passwords: apply both Secrets together, then restart Redis and pingcalc (`kubectl rollout
# restart deployment -n pingcalc`) so that each side reads its new file.
set -euo pipefail

NAMESPACE="${NAMESPACE:-pingcalc}"
KUBECTL="${KUBECTL:-kubectl}"
# The Service name and port of deploy/kubernetes/redis.yaml; 1 s timeouts (docs/scaling.md).
REDIS_ADDRESS="pingcalc-redis:6379"
REDIS_OPTIONS="socket_timeout=1&socket_connect_timeout=1"

umask 077
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

password() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }
sha256() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

app="$(password)"
probe="$(password)"
{
    printf 'user default off\n'
    printf 'user pingcalc on #%s ~pingcalc:* -@all +ping +evalsha +script|load +time +get +set +zadd +zcard +zremrangebyscore +zrem +expire\n' "$(sha256 "$app")"
    printf 'user probe on #%s -@all +ping\n' "$(sha256 "$probe")"
} >"$work/users.acl"
printf '%s' "$probe" >"$work/probe.password"
printf 'redis://pingcalc:%s@%s/0?%s' "$app" "$REDIS_ADDRESS" "$REDIS_OPTIONS" >"$work/rate_limit_storage"

"$KUBECTL" create secret generic pingcalc-redis --namespace "$NAMESPACE" \
    --from-file=users.acl="$work/users.acl" --from-file=probe.password="$work/probe.password" \
    --dry-run=client -o yaml
echo "---"
"$KUBECTL" create secret generic pingcalc-redis-client --namespace "$NAMESPACE" \
    --from-file=rate_limit_storage="$work/rate_limit_storage" \
    --dry-run=client -o yaml
