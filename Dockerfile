# One image with the three steadfast binaries (publisher, subscriber, runner).
# docker-compose.yml picks the binary per service with `command:`.
#
#   docker build -t steadfast:local .
#   docker build --build-arg VERSION=v1.2.3 -t steadfast:v1.2.3 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t steadfast:multi .
#   docker run --rm steadfast:local                      # the runner's demo
#   docker run --rm steadfast:local /usr/local/bin/subscriber --version
#
# Needs BuildKit (the default builder since Docker 23; on Docker 20.10 set
# DOCKER_BUILDKIT=1): cache mounts and $BUILDPLATFORM. There is deliberately
# no `# syntax=` line: the engine's built-in Dockerfile frontend is used, so
# nothing but the base images is pulled.
#
# The runtime stage is the one image definition. By default its binaries come
# from the `build` stage and its base is distroless. The tests (and anyone
# with binaries already built) use the same stage with
#   --build-arg BINARIES=prebuilt --build-arg BASE=scratch
# and a build context holding out/{publisher,subscriber,runner,datafs/data/,tmpfs/tmp/}
# (built with CGO_ENABLED=0 by the build stage's own `go build` line), so no
# image is pulled: internal/deploytest builds and runs exactly that.

ARG GO_VERSION=1.26
ARG BASE=gcr.io/distroless/static-debian12:nonroot
ARG BINARIES=build

# ---- build: static binaries on the official Go image, on the build host's
# platform, cross-compiled for the target's ----
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=bind,source=go.mod,target=go.mod \
    --mount=type=bind,source=go.sum,target=go.sum \
    go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH:-amd64} \
    go build -trimpath -buildvcs=false \
      -ldflags="-s -w -X github.com/steadfast-pods/steadfast/internal/buildinfo.version=${VERSION}" \
      -o /out/ ./cmd/publisher ./cmd/subscriber ./cmd/runner \
 && mkdir -p /out/datafs/data /out/tmpfs/tmp && chmod 1777 /out/tmpfs/tmp

# ---- prebuilt: the same files, built beforehand, from the build context ----
FROM scratch AS prebuilt
COPY out/ /out/

FROM ${BINARIES} AS binaries

# ---- runtime: distroless static (CA certs, tzdata, no shell), non-root ----
FROM ${BASE} AS runtime
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="steadfast" \
      org.opencontainers.image.description="Fault-tolerant actor pods streaming batched messages over an Aeron-protocol UDP transport" \
      org.opencontainers.image.source="https://github.com/steadfast-pods/steadfast" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=binaries /out/publisher /out/subscriber /out/runner /usr/local/bin/
# The data dir lives in the container's writable layer on purpose: a replaced
# container starts with an empty disk and restores its state from its peers.
# (A directory's own mode and owner are copied only as an entry of the
# copied directory, hence datafs/data and tmpfs/tmp.)
COPY --from=binaries --chown=65532:65532 /out/datafs/ /
# a writable /tmp (1777) for the runner's work dir (`docker run --rm steadfast:local`)
COPY --from=binaries /out/tmpfs/ /
USER 65532:65532
WORKDIR /data
# PATH as distroless sets it, spelled out so a scratch base gets the same;
# the runner's reports (user cache dir) under the writable /tmp, as 65532
# has no home directory there.
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    XDG_CACHE_HOME=/tmp/.cache \
    DATA_DIR=/data \
    BIND=0.0.0.0:7946 \
    DATA_ENDPOINT=0.0.0.0:40123 \
    METRICS_ADDR=:9090 \
    LOG_LEVEL=info
# memberlist gossip (tcp+udp), transport data (udp), /metrics, /livez, /readyz (tcp)
EXPOSE 7946/tcp 7946/udp 40123/udp 9090/tcp
# distroless has no curl or wget: the pod binary probes its own /healthz, which
# is its readiness (/readyz: joined, restored, actors running; 503 once fenced)
# (http://127.0.0.1:<port of METRICS_ADDR>/healthz), exit 0 when it answers 200.
HEALTHCHECK --interval=1s --timeout=2s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/subscriber", "--healthcheck"]
# Without a command: the runner's demo (1 publisher, 1 subscriber, on the
# container's loopback) with the binaries shipped here; compose runs the pods.
CMD ["/usr/local/bin/runner", "--bin-dir", "/usr/local/bin"]
