# syntax=docker/dockerfile:1
# segsync daemon image: docs/operations.md ("Docker"). Build: docker build -t segsync .
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# --- build: a virtualenv with segsync and its dependencies -------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/segsync
COPY pyproject.toml README.md ./
COPY src ./src
COPY connectors ./connectors
RUN /opt/segsync/bin/pip install ".[postgres]" \
    && /opt/segsync/bin/python -m compileall -q /opt/segsync/lib

# --- runtime: the same base, the virtualenv, an unprivileged user --------------------------------------
FROM ${PYTHON_IMAGE}
ARG UID=10001
RUN groupadd --system --gid "${UID}" segsync \
    && useradd --system --uid "${UID}" --gid segsync --home-dir /var/lib/segsync --shell /usr/sbin/nologin segsync \
    && install -d -o segsync -g segsync -m 0700 /var/lib/segsync \
    && install -d -m 0755 /etc/segsync
COPY --from=build /opt/segsync /opt/segsync
ENV PATH=/opt/segsync/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SEGSYNC_CONFIG=/etc/segsync/segsync.yaml \
    SEGSYNC_STATE_DIR=/var/lib/segsync \
    SEGSYNC_LISTEN=0.0.0.0:8787 \
    SEGSYNC_LOG_FORMAT=json
USER ${UID}:${UID}
WORKDIR /var/lib/segsync
VOLUME ["/var/lib/segsync"]
EXPOSE 8787
HEALTHCHECK --interval=30s --timeout=5s --start-period=2m --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; port = os.environ['SEGSYNC_LISTEN'].rsplit(':', 1)[1]; u.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["segsync"]
CMD ["run"]
