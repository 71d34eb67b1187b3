# syntax=docker/dockerfile:1
#
# One image with the three steadfast binaries (publisher, subscriber, runner).
# docker-compose.yml picks the binary per service with `command:`.
#
#   docker build -t steadfast:local .
#   docker run --rm steadfast:local                      # the runner's demo
#   docker run --rm steadfast:local /usr/local/bin/subscriber --help

# ---- build: static binaries on the official Go image ----
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false -ldflags="-s -w" -o /out/ \
      ./cmd/publisher ./cmd/subscriber ./cmd/runner \
 && mkdir -p /out/data /out/tmp && chmod 1777 /out/tmp

# ---- runtime: distroless static (CA certs, tzdata, no shell), non-root ----
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/publisher /out/subscriber /out/runner /usr/local/bin/
# The data dir lives in the container's writable layer on purpose: a replaced
# container starts with an empty disk and restores its state from its peers.
COPY --from=build --chown=65532:65532 /out/data /data
# a writable /tmp for the runner's work dir (`docker run --rm steadfast:local`)
COPY --from=build /out/tmp /tmp
USER 65532:65532
ENV DATA_DIR=/data \
    BIND=0.0.0.0:7946 \
    DATA_ENDPOINT=0.0.0.0:40123 \
    METRICS_ADDR=:9090 \
    LOG_LEVEL=info
# memberlist gossip (tcp+udp), transport data (udp), metrics and /healthz (tcp)
EXPOSE 7946/tcp 7946/udp 40123/udp 9090/tcp
# distroless has no curl or wget: the pod binary probes its own /healthz
# (http://127.0.0.1:<port of METRICS_ADDR>/healthz), exit 0 when it answers 200.
HEALTHCHECK --interval=5s --timeout=3s --start-period=15s --retries=3 \
  CMD ["/usr/local/bin/subscriber", "--healthcheck"]
# Without a command: the runner's demo (1 publisher, 1 subscriber, on the
# container's loopback) with the binaries shipped here; compose runs the pods.
CMD ["/usr/local/bin/runner", "--bin-dir", "/usr/local/bin"]
