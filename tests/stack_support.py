"""Helpers of the stack suite (tests/stack): the running stack, its replicas and client containers.

The stack is started with `make stack-up` (the operator's path) under a project name, state
directory, port and subnets unique to the run. Clients other than the host run in containers
on the stack's edge network, each with a fixed address of its own: to the edge, every host
process is one client (the bridge's gateway address).
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import math
import os
import re
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from container_support import DOCKER, REPO, docker, run
from pingcalc.throttle import Rate

CLIENT_SCRIPT = Path(__file__).resolve().parent / "stack" / "client.py"
CALC = "/api/v1/calculate"
PING = "/api/v1/ping"
# Server name the clients ask for; the certificate also names 127.0.0.1 and STACK_HOSTNAME.
SNI = "localhost"
# The extra name the test stack's certificate is made for (STACK_HOSTNAME).
HOSTNAME = "pingcalc-stack.test"
# Filled by the fixtures and tests, printed at the end (and in build/stack-metrics.json).
METRICS: dict[str, Any] = {}

# Non-secret settings of the test stack's replicas (its pingcalc.env). Per-hour budgets: a
# moving window and a GCRA give the same count within a test's few seconds, and hosts of one
# test never share an address with another test (each client container has its own).
SETTINGS = {
    "PINGCALC_RATE_LIMIT_PER_IP": "300/hour",
    "PINGCALC_AUTH_FAILURES_PER_IP": "20/hour",
    # Out of the way: the tests are about per-client limits; load tests share one token.
    "PINGCALC_RATE_LIMIT_PER_TOKEN": "1000000/hour",
}


def budget(setting: str) -> int:
    """The number of requests a rate setting of the test stack allows per window."""
    return Rate.parse(SETTINGS[setting]).count


def refill(setting: str, seconds: float) -> int:
    """Requests a rate-based limiter (GCRA) may add back in `seconds`; 0 for a fixed budget."""
    rate = Rate.parse(SETTINGS[setting])
    return math.floor(seconds * rate.count / rate.period)


def free_subnets(count: int) -> list[ipaddress.IPv4Network]:
    """/24 networks that overlap no network of the engine (other projects, other helpers)."""
    used: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    ids = docker("network", "ls", "-q").stdout.split()
    if ids:
        out = docker("network", "inspect", *ids)
        for net in json.loads(out.stdout or "[]"):
            for config in (net.get("IPAM") or {}).get("Config") or []:
                if config.get("Subnet"):
                    used.append(ipaddress.ip_network(config["Subnet"]))
    free: list[ipaddress.IPv4Network] = []
    # Docker hands out its default pools (172.17-31.0.0/16, then 192.168.x.0/20) round-robin,
    # so any one of them, 172.29.0.0/16 included, can be taken by another project's network
    # while the suite runs: 10.213.0.0/16, outside those pools, is the fallback.
    candidates = [f"172.29.{third}.0/24" for third in range(120, 250)]
    candidates += [f"10.213.{third}.0/24" for third in range(256)]
    for text in candidates:
        candidate = ipaddress.IPv4Network(text)
        if not any(candidate.overlaps(u) for u in used if u.version == 4):
            free.append(candidate)
            if len(free) == count:
                return free
    raise RuntimeError("no free /24 subnet for the test stack in 172.29.120-249 or 10.213.x")


def ssl_context(ca: Path, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A verifying client context that trusts only the stack's CA."""
    context = ssl.create_default_context(cafile=str(ca))
    if version is not None:
        context.minimum_version = context.maximum_version = version
    return context


@dataclass
class ClientRun:
    """A client container started in the background; `result()` waits for its JSON."""

    process: subprocess.Popen[str]
    address: str

    def first_line(self) -> dict[str, Any]:
        """The first JSON line the client prints (a progress report such as `ready`)."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"client {self.address} ended before reporting"
        data: dict[str, Any] = json.loads(line)
        return data

    def result(self, timeout: float = 120) -> dict[str, Any]:
        out, err = self.process.communicate(timeout=timeout)
        assert self.process.returncode == 0, f"client {self.address} failed:\n{err[-2000:]}"
        data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return data


@dataclass
class Stack:
    """The running test stack and the ways the tests reach it."""

    project: str
    url: str
    ca: Path
    state: Path
    env: dict[str, str]
    edge_subnet: ipaddress.IPv4Network
    image: str
    up_stdout: str = ""
    first_token: str = ""
    _addresses: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Client containers take fixed addresses above the engine's dynamic range (.0/25).
        hosts = list(self.edge_subnet.hosts())
        self._addresses = iter(hosts[len(hosts) // 2 + 1 :])

    # --- make targets, the operator's commands ---------------------------------------------

    def make(
        self, target: str, timeout: float = 300, **variables: str
    ) -> subprocess.CompletedProcess[str]:
        argv = ["make", "-s", "--no-print-directory", "-C", str(REPO), target]
        argv += [f"{k}={v}" for k, v in variables.items()]
        return run(argv, timeout=timeout, env=self.env)

    def token(self, name: str, scopes: str = "ping calculate") -> str:
        """A new token made with `make stack-token` (its only stdout line is the secret)."""
        made = self.make("stack-token", NAME=name, SCOPES=scopes)
        assert made.returncode == 0, made.stderr
        lines = made.stdout.splitlines()
        assert len(lines) == 1 and lines[0].startswith("pc_"), made.stdout
        return lines[0]

    # --- containers -------------------------------------------------------------------------

    def compose_ps(self, service: str) -> list[str]:
        out = docker(
            "ps", "-a", "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}", "--format", "{{.Names}}",
        )  # fmt: skip
        return sorted(out.stdout.split())

    def replicas(self) -> list[str]:
        return self.compose_ps("pingcalc")

    @property
    def edge(self) -> str:
        (name,) = self.compose_ps("edge")
        return name

    @property
    def redis(self) -> str:
        (name,) = self.compose_ps("redis")
        return name

    def inspect(self, container: str) -> dict[str, Any]:
        out = docker("inspect", container)
        assert out.returncode == 0, out.stderr
        data: dict[str, Any] = json.loads(out.stdout)[0]
        return data

    def address_on(self, container: str, network: str) -> str:
        networks = self.inspect(container)["NetworkSettings"]["Networks"]
        address: str = networks[f"{self.project}_{network}"]["IPAddress"]
        return address

    def logs(self, container: str, since: float | None = None) -> str:
        args = ["logs"] + (["--since", f"{since:.3f}"] if since else []) + [container]
        out = docker(*args)
        return out.stdout + out.stderr

    def python_in(
        self, container: str, code: str, *args: str, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """The image's Python inside a running replica (arguments are never formatted in)."""
        return docker("exec", container, "python", "-c", code, *args, timeout=timeout)

    def readyz(self, container: str) -> tuple[int, dict[str, Any]]:
        """/readyz of one replica, asked from inside it."""
        code = (
            "import json, urllib.request, urllib.error\n"
            "try:\n"
            "    r = urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=5)\n"
            "    print(r.status, r.read().decode())\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.code, e.read().decode())\n"
        )
        out = self.python_in(container, code)
        assert out.returncode == 0, out.stderr
        status, _, body = out.stdout.strip().partition(" ")
        return int(status), json.loads(body)

    def healthy(self) -> bool:
        """Every container healthy and the edge routing to every replica."""
        names = [*self.replicas(), self.edge, self.redis]
        states = [self.inspect(n)["State"] for n in names]
        return all(s.get("Health", {}).get("Status") == "healthy" for s in states)

    def wait_healthy(self, timeout: float = 90) -> float:
        started = time.monotonic()
        while not self.healthy():
            if time.monotonic() - started > timeout:
                raise AssertionError(f"stack not healthy after {timeout} s")
            time.sleep(0.5)
        return time.monotonic() - started

    # --- clients ----------------------------------------------------------------------------

    def https(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        """A client on the host (the edge sees the bridge's gateway address)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(
            base_url=self.url, headers=headers, verify=ssl_context(self.ca), timeout=20, **kwargs
        )

    def new_address(self) -> str:
        return str(next(self._addresses))

    def start_client(
        self, mode: str, *args: str, token: str | None = None, address: str | None = None
    ) -> ClientRun:
        """client.py in a container of the pingcalc image, from its own source address."""
        address = address or self.new_address()
        argv = [
            DOCKER, "run", "--rm", "-i",
            "--label", f"pingcalc.stack-test={self.project}",
            "--network", f"{self.project}_edge", "--ip", address,
            "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--user", "10001:10001", "--memory", "256m", "--cpus", "1",
            "--mount", f"type=bind,src={CLIENT_SCRIPT},dst=/client.py,readonly",
            "--mount", f"type=bind,src={self.ca},dst=/ca.crt,readonly",
            "--env", "TOKEN",
            "--entrypoint", "/opt/venv/bin/python", self.image, "/client.py", mode,
            "--host", self.address_on(self.edge, "edge"), "--sni", SNI, *args,
        ]  # fmt: skip
        env = {**os.environ, "TOKEN": token or ""}
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        return ClientRun(process, address)

    def client(
        self, mode: str, *args: str, token: str | None = None, timeout: float = 120
    ) -> dict[str, Any]:
        return self.start_client(mode, *args, token=token).result(timeout)

    def remove_clients(self) -> None:
        """Client containers of this run still alive (a test that failed midway)."""
        out = docker("ps", "-aq", "--filter", f"label=pingcalc.stack-test={self.project}")
        if out.stdout.split():
            docker("rm", "-f", *out.stdout.split())


def markers_per_replica(stack: Stack, prefix: str, since: float) -> dict[str, set[str]]:
    """The request ids `<prefix>-<n>` each replica logged since `since` (its access events;
    an id may appear in several events of one request, so they are counted once)."""
    pattern = re.compile(rf'"({re.escape(prefix)}-\d+)"')
    return {name: set(pattern.findall(stack.logs(name, since=since))) for name in stack.replicas()}


def unique(prefix: str) -> str:
    return f"{prefix}{next(_COUNTER)}x{os.getpid()}"


_COUNTER = itertools.count()
