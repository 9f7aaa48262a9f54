# pingcalc container image: a builder stage on a Python base, a `FROM scratch` runtime stage.
#
#   DOCKER_BUILDKIT=1 docker build -t pingcalc:local .                      # upstream base
#   make image                                  # local base from Debian packages (no registry)
#
# The runtime stage holds one Python interpreter, a trimmed precompiled standard library, the
# shared libraries they load, the virtual environment (no pip) and two lines of /etc/passwd:
# no shell, no package manager, nothing owned by the service user (uid/gid 10001).
# Threats: T1611 escape to host and T1610 tooling for an intruder (nothing to run but Python),
# T1211/T1499 via insecure defaults (non-root, loopback publish, see compose.yaml).

# Default base: the official python:3.11-slim-bookworm, pinned by digest so a rebuild cannot
# silently change it. Digest as pinned in the public Dockerfile of
# github.com/peiyang-z6/BandStructure_AI_Project (commit 031f26d8efa99aa7b48789a61e4834bcc313d355)
# and in muse2api's Dockerfile; refresh it from the registry when upgrading.
# Where no registry is reachable: deploy/docker/build-base.sh builds an equivalent base from
# Debian packages and `make image` passes it as --build-arg BASE_IMAGE=...
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

FROM ${BASE_IMAGE} AS builder
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1
WORKDIR /src
# binutils' `strip` takes the debug sections out of the wheels' extension modules (uvloop's
# alone carries 13 MB of them); it stays in this stage.
RUN apt-get update -qq \
    && apt-get install -qq -y --no-install-recommends binutils >/dev/null \
    && rm -rf /var/lib/apt/lists/*
# `python3` is the base's interpreter wherever it lives (/usr/bin on Debian, /usr/local/bin
# in the official image); the venv links to it and assemble_rootfs.py copies that chain.
RUN python3 -m venv /opt/venv && python3 -m venv /opt/build-tools

# Dependencies first (cached until the lock changes): exact versions, every file checked
# against the lock's hashes, wheels only (no setup.py runs), no dependency resolution.
# A TLS-intercepting proxy's CA may be passed as a BuildKit secret: it never lands in a layer.
COPY requirements.lock deploy/docker/requirements-build.lock /src/locks/
RUN --mount=type=secret,id=pip_cert,required=false \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && /opt/venv/bin/pip install --require-hashes --no-deps --only-binary=:all: \
        -r locks/requirements.lock \
    && /opt/build-tools/bin/pip install --require-hashes --no-deps --only-binary=:all: \
        -r locks/requirements-build.lock

# The app itself: built to a wheel with the locked build backend, installed without deps.
COPY pyproject.toml README.md /src/
COPY src /src/src
RUN /opt/build-tools/bin/pip wheel --no-deps --no-build-isolation --no-index -w /tmp/dist /src \
    && /opt/venv/bin/pip install --no-deps --no-index /tmp/dist/pingcalc-*.whl \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/pip uninstall -q -y pip setuptools \
    && rm -f /opt/venv/bin/activate* /opt/venv/bin/pip*

COPY deploy/docker/assemble_rootfs.py /src/
# Prove the tree stands alone before it becomes the image: import the app and every native
# module it needs with nothing but /rootfs visible.
RUN python3 /src/assemble_rootfs.py /rootfs /opt/venv \
    && chroot /rootfs /opt/venv/bin/python -c \
        "import ssl, hashlib, uvloop, httptools, pydantic_core, pingcalc.app, pingcalc.cli"

FROM scratch AS runtime
COPY --from=builder /rootfs/ /
# Inside its own network namespace the service must listen on all of the container's
# interfaces to be reachable through the publish; exposure is decided by the publish, which
# compose.yaml binds to 127.0.0.1 only. Outside a container the default stays 127.0.0.1.
ENV PATH=/opt/venv/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PINGCALC_HOST=0.0.0.0 \
    PINGCALC_PORT=8080 \
    PINGCALC_TOKENS_FILE=/run/secrets/pingcalc_tokens
USER 10001:10001
WORKDIR /app
EXPOSE 8080
# No curl or shell in the image: the probe is Python, exec form.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/opt/venv/bin/python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PINGCALC_PORT', '8080'), timeout=2)"]
ENTRYPOINT ["/opt/venv/bin/pingcalc"]
CMD ["serve"]
