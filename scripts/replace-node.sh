#!/usr/bin/env bash
# replace-node.sh SERVICE: kill a steadfast node container and replace it.
#
# What a real node replacement looks like: the container is killed (SIGKILL,
# no graceful stop), removed with its writable layer (so its data dir is
# gone), and a fresh container is started for the same compose service, hence
# the same NODE_ID, on a new container with a new IP and an empty disk. The
# script then watches the new pod and reports, from the kill:
#   ready       its /readyz answers 200 (joined, restored, actors running);
#   delivering  the pod's own metrics show the stream moving through it: a
#               subscriber's first value through its worker
#               (steadfast_values_processed_total > 0), a publisher's first
#               ack from a subscriber (steadfast_acks_received_total > 0);
#   healthy     the engine's healthcheck says healthy (it runs every
#               healthcheck interval, so this lags readiness);
# and where its state came from (its restore source, from /metrics).
#
#   scripts/replace-node.sh subscriber-1
#   replace-node: killing subscriber-1 (project steadfast, container 193163fb54d3, address 172.19.0.4)
#   replace-node: started subscriber-1 (container 4ac5f9befdb0, address 172.19.0.4, created before the kill) 1.440s after the kill
#   replace-node: subscriber-1 replaced in 2.712s (ready after 2.281s, delivering after 2.532s, healthy after 2.695s), restore source peer:subscriber-2
#   replace-node: subscriber-1 per its log: container started 1.440s after the kill, pod running 1.528s after the kill (0.088s after its start)
#   replace-node: subscriber-1 from its container's start, as seen here: ready after 0.860s, delivering after 1.104s
#
# It acts on the compose project of this checkout: the one `docker compose`
# uses in the repository's root (COMPOSE_PROJECT_NAME, else the directory's
# name; COMPOSE_FILE is honoured too). Exit 0 when the replacement restored
# from a peer (peer:<node id>), 1 otherwise (with ALLOW_ANY_SOURCE=1: any
# reported source), 2 on bad usage. Needs docker with the compose plugin and
# curl.
#
# Environment: COMPOSE (default "docker compose"), TIMEOUT seconds (default
# 120), STANDBY (default 1: the replacement container is created before the
# kill and only started after it; 0: created after the kill by `docker
# compose up`, slower), METRICS_PORT container port of /metrics (default
# 9090); metric names as in scripts/lib.sh.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SCRIPT_DIR/lib.sh"
cd "$SCRIPT_DIR/.."

usage() {
  echo "usage: $0 SERVICE   (a pod service of docker-compose.yml: publisher, subscriber-1, subscriber-2)"
  echo "       $0 --help"
}
help_if_asked "$0" "${1:-}"
[[ $# -eq 1 && -n $1 && $1 != -* ]] || {
  usage >&2
  exit 2
}
SERVICE=$1
TIMEOUT=${TIMEOUT:-120}
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || {
  echo "replace-node: TIMEOUT must be a whole number of seconds, not '$TIMEOUT'" >&2
  exit 2
}
METRICS_PORT=${METRICS_PORT:-9090}
read -r -a COMPOSE_CMD <<<"${COMPOSE:-docker compose}"

compose() { "${COMPOSE_CMD[@]}" "$@"; }
say() { printf 'replace-node: %s\n' "$*"; }
die() {
  printf 'replace-node: FAIL: %s\n' "$*" >&2
  exit 1
}

# (no `| grep -q` under pipefail: grep exits at the first match and the
# writer's SIGPIPE would fail the pipeline)
services=$(compose config --services) || die "docker compose config failed"
grep -qx -- "$SERVICE" <<<"$services" || die "no service $SERVICE in docker-compose.yml"
command -v curl >/dev/null || die "curl is needed to read the pods' /metrics"
project=$(compose config 2>/dev/null | sed -n 's/^name: //p' | sed -n 1p)

old=$(compose ps -q "$SERVICE" || true)
[[ -n $old ]] || say "$SERVICE has no container in project ${project:-?}; starting one"
# A standby: the replacement container is created (not started: no process,
# no address yet) before the kill, from the same service definition, so that
# after the kill only `docker start` is left. STANDBY=0, or a compose that
# cannot create one, falls back to `docker compose up` after the kill.
standby=""
if [[ -n $old && ${STANDBY:-1} == 1 ]]; then
  compose rm -f "$SERVICE" >/dev/null 2>&1 || true # leftovers that are not running
  before=$(compose ps -a -q "$SERVICE" 2>/dev/null || true)
  if compose create --no-build --no-recreate --scale "$SERVICE=2" "$SERVICE" >/dev/null 2>&1; then
    for c in $(compose ps -a -q "$SERVICE" 2>/dev/null || true); do
      grep -qx -- "$c" <<<"$before" || standby=$c
    done
  fi
fi
start=$(now_ms)
if [[ -n $old ]]; then
  old_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$old")
  say "killing $SERVICE (project ${project:-?}, container ${old:0:12}, address ${old_ip% })"
  start=$(now_ms)
  # (the engine's own kill and rm: the compose CLI would first load the
  # whole project, which costs seconds on a busy machine)
  docker kill -s SIGKILL "$old" >/dev/null
fi
if [[ -n $standby ]]; then
  docker start "$standby" >/dev/null
  docker rm -f "$old" >/dev/null
else
  if [[ -n $old ]]; then docker rm -f "$old" >/dev/null; fi
  compose up -d --no-deps --no-build "$SERVICE" >/dev/null
fi
new=$(compose ps -q "$SERVICE")
[[ -n $new && $new != "$old" ]] || die "no new container for $SERVICE"
# (Docker hands out the lowest free address of the network: usually the
# killed container's. The pods do not rely on it: peers learn the new
# incarnation's address from gossip.)
new_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$new")
# When the engine started the new container: the pod's own times below are
# also given from there, without the docker/compose commands' overhead.
started_at=$(docker inspect -f '{{.State.StartedAt}}' "$new")
started_ms=$(date -d "$started_at" +%s%3N 2>/dev/null || now_ms)
say "started $SERVICE (container ${new:0:12}, address ${new_ip% }$([[ -n $standby ]] && echo ", created before the kill")) $(span "$start" "$started_ms") after the kill"

# The metrics port is published on 127.0.0.1 (see docker-compose.yml).
addr=$(compose port "$SERVICE" "$METRICS_PORT") || die "$SERVICE does not publish port $METRICS_PORT"
deadline=$((SECONDS + TIMEOUT))
ready_after="" delivering_after="" healthy_after="" source="" ready_own="" delivering_own=""
until [[ -n $ready_after && -n $delivering_after && -n $healthy_after && -n $source ]]; do
  ((SECONDS < deadline)) || die "$SERVICE after ${TIMEOUT}s: ready after ${ready_after:-never}, delivering after ${delivering_after:-never}, healthy after ${healthy_after:-never}, restore source ${source:-none reported}"
  if [[ -z $ready_after ]] && curl -fsS --max-time 1 "http://$addr/readyz" >/dev/null 2>&1; then
    ready_after=$(elapsed "$start")
    ready_own=$(elapsed "$started_ms")
  fi
  if [[ -z $delivering_after || -z $source ]]; then
    m=$(curl -fsS --max-time 1 "http://$addr/metrics" 2>/dev/null || true)
    if [[ -n $m && -z $source ]]; then
      source=$(metric_label "$M_RESTORE" "$M_RESTORE_LABEL" <<<"$m" | sed -n 1p || true)
    fi
    if [[ -n $m && -z $delivering_after ]]; then
      if grep -q "^$M_PUBLISHED " <<<"$m"; then progress=$M_ACKS_IN; else progress=$M_PROCESSED; fi
      n=$(metric_sum "$progress" <<<"$m" || echo 0)
      if ((n > 0)); then
        delivering_after=$(elapsed "$start")
        delivering_own=$(elapsed "$started_ms")
      fi
    fi
  fi
  if [[ -z $healthy_after ]]; then
    health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}no-healthcheck{{end}}' "$new")
    [[ $health == no-healthcheck ]] && die "$SERVICE has no healthcheck"
    [[ $health == healthy ]] && healthy_after=$(elapsed "$start")
  fi
  [[ -n $ready_after && -n $delivering_after && -n $healthy_after && -n $source ]] || sleep 0.05
done

say "$SERVICE replaced in $(elapsed "$start") (ready after $ready_after, delivering after $delivering_after, healthy after $healthy_after), restore source $source"
# The pod's own log: when it was running (joined, restored, actors up),
# from the kill and from its container's start. (The figures above are when
# this script saw it; on a busy machine the docker commands make it look late.)
running_ms=""
running_at=$(docker logs "$new" 2>&1 | sed -n 's/^time=\([^ ]*\) .*msg="pod: running".*/\1/p' | sed -n 1p || true)
[[ -n $running_at ]] && running_ms=$(date -d "$running_at" +%s%3N 2>/dev/null || true)
# ... and when the stream first moved through it (`pod: delivering`: the
# first value through a subscriber's worker, the first ack to a publisher).
delivering_ms=""
delivering_at=$(docker logs "$new" 2>&1 | sed -n 's/^time=\([^ ]*\) .*msg="pod: delivering".*/\1/p' | sed -n 1p || true)
[[ -n $delivering_at ]] && delivering_ms=$(date -d "$delivering_at" +%s%3N 2>/dev/null || true)
if [[ -n $running_ms ]]; then
  say "$SERVICE per its log: container started $(span "$start" "$started_ms") after the kill, pod running $(span "$start" "$running_ms") after the kill ($(span "$started_ms" "$running_ms") after its start)$([[ -n $delivering_ms ]] && echo ", delivering $(span "$start" "$delivering_ms") after the kill")"
fi
say "$SERVICE from its container's start, as seen here: ready after $ready_own, delivering after $delivering_own"
if [[ $source != peer:* && ${ALLOW_ANY_SOURCE:-0} != 1 ]]; then
  die "$SERVICE restored from '$source', not from a peer: its state was not recovered"
fi
