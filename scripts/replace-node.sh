#!/usr/bin/env bash
# replace-node.sh SERVICE: kill a steadfast node container and replace it.
#
# What a real node replacement looks like: the container is killed (SIGKILL,
# no graceful stop), removed with its writable layer (so its data dir is
# gone), and a fresh container is started for the same compose service, hence
# the same NODE_ID, on a new container with a new IP and an empty disk. The
# script waits until the new container is healthy and reports where its state
# came from (its restore source, from /metrics), then prints the elapsed time.
#
#   scripts/replace-node.sh subscriber-1
#   replace-node: subscriber-1 replaced in 6.412s (healthy after 3.020s), restore source peer:subscriber-2
#
# Exit 0 when the replacement restored from a peer (peer:<node id>), 1
# otherwise (with ALLOW_ANY_SOURCE=1: any reported source). Needs docker with
# the compose plugin and curl; run from anywhere inside the repository.
#
# Environment: COMPOSE (default "docker compose"), TIMEOUT seconds (default
# 120), METRICS_PORT container port of /metrics (default 9090); metric names
# as in scripts/lib.sh.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SCRIPT_DIR/lib.sh"
cd "$SCRIPT_DIR/.."

TIMEOUT=${TIMEOUT:-120}
METRICS_PORT=${METRICS_PORT:-9090}
read -r -a COMPOSE_CMD <<<"${COMPOSE:-docker compose}"

compose() { "${COMPOSE_CMD[@]}" "$@"; }
say() { printf 'replace-node: %s\n' "$*"; }
die() {
  printf 'replace-node: FAIL: %s\n' "$*" >&2
  exit 1
}

[[ $# -eq 1 ]] || {
  echo "usage: $0 SERVICE   (one of: $(compose config --services 2>/dev/null | tr '\n' ' '))" >&2
  exit 2
}
SERVICE=$1
# (no `| grep -q` under pipefail: grep exits at the first match and the
# writer's SIGPIPE would fail the pipeline)
services=$(compose config --services) || die "docker compose config failed"
grep -qx -- "$SERVICE" <<<"$services" || die "no service $SERVICE in docker-compose.yml"
command -v curl >/dev/null || die "curl is needed to read the pods' /metrics"

start=$(now_ms)
old=$(compose ps -q "$SERVICE" || true)
[[ -n $old ]] || say "$SERVICE has no container; starting one"
if [[ -n $old ]]; then
  say "killing $SERVICE (container ${old:0:12})"
  compose kill -s SIGKILL "$SERVICE" >/dev/null
  compose rm -f -s "$SERVICE" >/dev/null
fi
compose up -d --no-deps --no-build "$SERVICE" >/dev/null
new=$(compose ps -q "$SERVICE")
[[ -n $new && $new != "$old" ]] || die "no new container for $SERVICE"
say "started $SERVICE (container ${new:0:12})"

deadline=$((SECONDS + TIMEOUT))
health=""
until [[ $health == healthy ]]; do
  health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}no-healthcheck{{end}}' "$new")
  [[ $health == no-healthcheck ]] && die "$SERVICE has no healthcheck"
  ((SECONDS < deadline)) || die "$SERVICE not healthy after ${TIMEOUT}s (status $health)"
  [[ $health == healthy ]] || sleep 0.5
done
healthy_after=$(elapsed "$start")

# The metrics port is published on 127.0.0.1 (see docker-compose.yml).
addr=$(compose port "$SERVICE" "$METRICS_PORT") || die "$SERVICE does not publish port $METRICS_PORT"
source=""
until [[ -n $source ]]; do
  source=$(curl -fsS --max-time 2 "http://$addr/metrics" 2>/dev/null | metric_label "$M_RESTORE" "$M_RESTORE_LABEL" | sed -n 1p || true)
  ((SECONDS < deadline)) || die "$SERVICE reported no restore source ($M_RESTORE) after ${TIMEOUT}s"
  [[ -n $source ]] || sleep 0.5
done

say "$SERVICE replaced in $(elapsed "$start") (healthy after $healthy_after), restore source $source"
if [[ $source != peer:* && ${ALLOW_ANY_SOURCE:-0} != 1 ]]; then
  die "$SERVICE restored from '$source', not from a peer: its state was not recovered"
fi
