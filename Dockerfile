# syntax=docker/dockerfile:1
# nadir-extproc: the ext_proc gRPC service, runtime dependencies only, non-root.
#   docker build -t nadir-extproc:0.1.0 .
#   docker run --rm -p 50052:50052 nadir-extproc:0.1.0
# ExternalProcessor listens on loopback 127.0.0.1:50051 by default (and NADIR_UDS): Envoy must share
# the container's network namespace (a pod, or docker --network container:...) or the socket. Over a
# network, configure mTLS (`tls` in the settings file, SECURITY.md). :50052 answers gRPC health only.
# NADIR_LISTEN is deliberately NOT set here: an environment variable would override the settings
# file's `listen` (null in the k8s sidecar, mTLS on 0.0.0.0:50051 in gateway mode).
# The image is not built by the test suite (no Docker daemon there); tests/deploy lints this file
# with hadolint, runs the marked wheel step as written, serves from that wheel with the ENV and CMD
# below and runs the HEALTHCHECK command against it.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Same build backend as pyproject.toml's [build-system]; the dev extra pins the same version.
RUN pip install --no-cache-dir "hatchling==1.27.0"
COPY pyproject.toml README.md ./
COPY nadir_extproc/ nadir_extproc/
# >>> wheel: the package with its data (price catalogue comes with genai-prices, the router's ONNX
# model and generated stubs ship inside nadir_extproc/); tests/deploy runs this command.
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .
# <<< wheel
# Runtime dependencies ([project].dependencies) plus the extras the k8s manifests use: prometheus
# (/metrics on :9464) and postgres (NADIR_LEDGER_DSN). No demo/dev/train extras, no Envoy binary.
RUN python -m venv /opt/nadir \
 && whl="$(echo /wheels/nadir_extproc-*.whl)" \
 && /opt/nadir/bin/pip install --no-cache-dir "${whl}[prometheus,postgres]"

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 nadir \
 && useradd --system --uid 10001 --gid nadir --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nadir
COPY --from=build /opt/nadir /opt/nadir
ENV PATH=/opt/nadir/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NADIR_HEALTH_LISTEN=0.0.0.0:50052
USER 10001:10001
EXPOSE 50052
# SIGTERM: health turns NOT_SERVING, no new streams, open ones get grace_period_s to finish.
STOPSIGNAL SIGTERM
# grpc.health.v1 Check for the ext_proc service on the health-only port; exit 0 only when SERVING.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; port = os.environ.get('NADIR_HEALTH_LISTEN', '0.0.0.0:50052').rsplit(':', 1)[1]; r = g.HealthStub(grpc.insecure_channel('127.0.0.1:' + port)).Check(h.HealthCheckRequest(service='envoy.service.ext_proc.v3.ExternalProcessor'), timeout=2); sys.exit(0 if r.status == h.HealthCheckResponse.SERVING else 1)"]
ENTRYPOINT ["nadir-extproc"]
CMD ["serve"]
