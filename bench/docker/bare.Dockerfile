# The bare-app image of bench/bench_container.py: bench/bare_app.py (FastAPI, a pydantic body
# model, plain uvicorn with httptools and uvloop) assembled the way the pingcalc image is:
# the same local base, the same deploy/docker/assemble_rootfs.py (trimmed precompiled
# standard library, shared libraries found with ldd, stripped extension modules, sourceless
# dependencies, no pip), a `FROM scratch` runtime stage. The two images then differ only in
# the application and its dependencies. Built by the benchmark from a context holding just
# this file, bare-requirements.lock, bare_app.py and assemble_rootfs.py.
ARG BASE_IMAGE=pingcalc/base-python:3.11-bookworm

FROM ${BASE_IMAGE} AS builder
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1
WORKDIR /src
# binutils' `strip`, for assemble_rootfs.py; it stays in this stage.
RUN apt-get update -qq \
    && apt-get install -qq -y --no-install-recommends binutils >/dev/null \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
COPY bare-requirements.lock /src/
RUN --mount=type=secret,id=pip_cert,required=false \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && /opt/venv/bin/pip install --require-hashes --no-deps --only-binary=:all: \
        -r /src/bare-requirements.lock \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/pip uninstall -q -y pip setuptools \
    && rm -f /opt/venv/bin/activate* /opt/venv/bin/pip*
COPY bare_app.py assemble_rootfs.py /src/
RUN cp /src/bare_app.py "$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/" \
    && python3 /src/assemble_rootfs.py /rootfs /opt/venv \
    && chroot /rootfs /opt/venv/bin/python -c "import ssl, uvloop, httptools, pydantic_core, bare_app"

FROM scratch AS runtime
COPY --from=builder /rootfs/ /
ENV PATH=/opt/venv/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /app
EXPOSE 8080
ENTRYPOINT ["/opt/venv/bin/python", "-m", "bare_app", "8080", "0.0.0.0"]
