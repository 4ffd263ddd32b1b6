# syntax=docker/dockerfile:1
# One image for every part of the pipeline: `heartbeat produce`, `consume`, `migrate`,
# `operator`... The first stage builds wheels (the project's and its dependencies'); the
# second installs them into a virtual environment and carries no build tools.

ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# Only what the wheel is built from (pyproject's packages and force-include, see
# .dockerignore); sql/ goes into the wheel as heartbeat/sql.
COPY pyproject.toml README.md ./
COPY app ./app
COPY operator ./operator
COPY sql ./sql
RUN pip wheel --wheel-dir /wheels .

FROM python:${PYTHON_VERSION}-slim
ARG UID=10001
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# The wheels are bind-mounted rather than copied, so they never become a layer. Bytecode
# is compiled at install time because the root filesystem is read-only at run time.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install --no-index --find-links /wheels --compile heartbeat \
    && groupadd --system --gid ${UID} heartbeat \
    && useradd --system --uid ${UID} --gid ${UID} --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin heartbeat
WORKDIR /tmp
# Numeric, so that Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER ${UID}:${UID}
EXPOSE 8000
ENTRYPOINT ["heartbeat"]
CMD ["--help"]
