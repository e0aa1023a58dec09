# syntax=docker/dockerfile:1
# The REST control plane (`face-api serve`). Build from the repository root:
#   docker build -f docker/control-plane.Dockerfile -t ghcr.io/face-analysis/control-plane:0.1.0 .
# Multi-stage: the build stage makes a virtual environment with the pinned versions (constraints.txt); the runtime
# stage copies only that environment and runs as an unprivileged user. It needs no tritonserver: it calls one.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY face_analysis ./face_analysis
COPY control_plane ./control_plane
RUN pip install -c constraints.txt ".[api]"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="face-analysis control plane" \
      org.opencontainers.image.source="https://github.com/face-analysis/face-analysis" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app \
    && install -d -o 10001 -g 10001 /var/lib/face-api
COPY --from=build /opt/venv /opt/venv
# Listen on every interface inside the container; everything else comes from FACE_API_* at run time.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FACE_API_HOST=0.0.0.0 \
    FACE_API_PORT=8080
WORKDIR /var/lib/face-api
USER 10001:10001
EXPOSE 8080
# Liveness only: readiness (/health/ready) depends on Triton and Redis and is for load balancers, not restarts.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('FACE_API_PORT', '8080'), timeout=2)"]
# Set FACE_API_ADMIN_TOKEN (compose and the chart do); without it a token for this run is written to
# /var/lib/face-api/build/admin-token, which a read-only root file system refuses.
CMD ["face-api", "serve"]
