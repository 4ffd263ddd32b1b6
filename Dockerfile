# One image for every part of the pipeline: `heartbeat produce`, `consume`, `migrate`,
# `operator`... The build stage installs the project and its dependencies into a virtual
# environment; the final stage copies that environment and carries no pip, no build tools.
#
#   docker build -t heartbeat:dev .          public base (python:3.12-slim), wheels from PyPI
#   make image                               the same through BuildKit, with the base that is
#                                            reachable here and the wheels fetched on the host
#
# No `# syntax=` line: it would pull a frontend image, and the frontend built into BuildKit
# already knows `RUN --mount`. BuildKit is needed (DOCKER_BUILDKIT=1 on a 20.10 CLI).
#
# Build arguments:
#   BASE_IMAGE    the runtime base; any image with python3 at the same path as BUILD_IMAGE
#   BUILD_IMAGE   the build stage's base: BASE_IMAGE plus pip and venv (the default, since
#                 python:3.12-slim has both)
#   WHEELHOUSE    an image holding wheels at its root; when it has any, pip installs from it
#                 alone, with no network. `scratch` (the default) means PyPI.
#   UID           the numeric user the image runs as
# Behind a TLS-intercepting proxy, give pip the host's certificate authorities as a secret,
# which never becomes part of a layer:
#   DOCKER_BUILDKIT=1 docker build --secret id=pip-ca,src=/etc/ssl/certs/ca-certificates.crt .

ARG BASE_IMAGE=python:3.12-slim
ARG BUILD_IMAGE=${BASE_IMAGE}
ARG WHEELHOUSE=scratch

FROM ${WHEELHOUSE} AS wheelhouse

FROM ${BUILD_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_ONLY_BINARY=:all:
# Where pip finds wheels: the wheelhouse when it has any (no network), else PyPI, with the
# secret CA bundle when one is given. Sourced by both pip steps below.
RUN printf '%s\n' \
    'if [ -n "$(ls -A /wheelhouse 2>/dev/null)" ]; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheelhouse; fi' \
    'if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi' \
    > /etc/pip-sources.sh
WORKDIR /src
# The dependencies first, from pyproject.toml alone: this layer stays cached while only the
# sources change. They are the pipeline's and the operator extra's (kopf, the Kubernetes
# client), since one image runs every command. Bytecode is compiled now because the root
# filesystem is read-only at run time. The Kubernetes client ships an asyncio twin (kubernetes/aio, ~70 MB with bytecode)
# that nothing here imports (the operator uses the synchronous client); dropping it keeps the
# image under 300 MB, and the imports at the end fail the build if that ever changes.
COPY pyproject.toml ./
RUN --mount=type=bind,from=wheelhouse,target=/wheelhouse \
    --mount=type=secret,id=pip-ca \
    set -eu; . /etc/pip-sources.sh; \
    python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print(*p["dependencies"], *p["optional-dependencies"]["operator"], sep="\n")' \
        > /tmp/requirements.txt; \
    python3 -m venv --without-pip /opt/venv; \
    python3 -m pip --python /opt/venv/bin/python install --compile --requirement /tmp/requirements.txt; \
    rm -rf /opt/venv/lib/python3*/site-packages/kubernetes/aio
# Then the product (see .dockerignore): the pipeline, the operator and the migrations, which
# go into the wheel as heartbeat/sql. The local test services stay out.
COPY README.md ./
COPY app ./app
COPY operator ./operator
COPY sql ./sql
RUN --mount=type=bind,from=wheelhouse,target=/wheelhouse \
    --mount=type=secret,id=pip-ca \
    set -eu; . /etc/pip-sources.sh; \
    python3 -m pip --python /opt/venv/bin/python install --compile --no-deps /src; \
    /opt/venv/bin/python -c 'import heartbeat.cli, heartbeat_operator.handlers, heartbeat_operator.kube'; \
    /opt/venv/bin/heartbeat --help > /dev/null

FROM ${BASE_IMAGE}
ARG BASE_IMAGE
ARG UID=10001
LABEL org.opencontainers.image.title="heartbeat" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The public base brings pip (older tags setuptools and wheel too) into its system Python;
# nothing runs them at run time, so they go. Debian's python3 has none of them.
RUN if python3 -m pip --version > /dev/null 2>&1; then \
        python3 -m pip uninstall --yes --quiet pip setuptools wheel; \
    fi \
    && groupadd --system --gid ${UID} heartbeat \
    && useradd --system --uid ${UID} --gid ${UID} --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin heartbeat
COPY --from=build /opt/venv /opt/venv
WORKDIR /tmp
# Numeric, so that Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER ${UID}:${UID}
# One process per container: every command serves its metrics on 8000 (the chart's
# config.metricsPort), not the per-command defaults that let them share one machine.
ENV METRICS_PORT=8000
EXPOSE 8000
ENTRYPOINT ["heartbeat"]
CMD ["--help"]
