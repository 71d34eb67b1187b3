#!/usr/bin/env bash
# chaos.sh [DURATION]: replace random steadfast nodes for DURATION (default
# 5m; 90s, 10m, 1h...), then check from the pods' metrics that nothing was
# lost or duplicated.
#
#   docker compose up -d --build && scripts/chaos.sh 5m
#
# Loop: pick a random pod service, scripts/replace-node.sh it (kill -9,
# remove, fresh container, same node id, empty disk; it must restore from a
# peer), pause PAUSE seconds (default: random 5-15), repeat.
#
# Check, once the loop is over: every pod healthy; the publisher's count of
# generated values G is read; each subscriber must then reach delivered >= G
# (it catches up through replay) within TIMEOUT seconds, and report 0 lost
# values. The duplicates each subscriber dropped (replays below its
# watermark, expected after replacements) are printed for information: a
# duplicate that was applied instead of dropped would show as delivered
# running ahead of generated, which is also checked once the stream is
# drained (BEATS > 0) or as delivered <= generated at the same instant.
#
# Environment: COMPOSE, TIMEOUT (default 180), PAUSE, SERVICES (default
# "publisher subscriber-1 subscriber-2"), PUBLISHERS (default "publisher"),
# SUBSCRIBERS (default "subscriber-1 subscriber-2"); metric names as in
# scripts/lib.sh. Exit 0 when every check passes.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SCRIPT_DIR/lib.sh"
cd "$SCRIPT_DIR/.."

DURATION=$(duration_s "${1:-5m}")
TIMEOUT=${TIMEOUT:-180}
METRICS_PORT=${METRICS_PORT:-9090}
read -r -a COMPOSE_CMD <<<"${COMPOSE:-docker compose}"
read -r -a SERVICES <<<"${SERVICES:-publisher subscriber-1 subscriber-2}"
read -r -a PUBLISHERS <<<"${PUBLISHERS:-publisher}"
read -r -a SUBSCRIBERS <<<"${SUBSCRIBERS:-subscriber-1 subscriber-2}"

compose() { "${COMPOSE_CMD[@]}" "$@"; }
say() { printf 'chaos: %s\n' "$*"; }
die() {
  printf 'chaos: FAIL: %s\n' "$*" >&2
  exit 1
}

# metrics SERVICE: the service's /metrics, through its published port.
metrics() {
  local addr
  addr=$(compose port "$1" "$METRICS_PORT") || return 1
  curl -fsS --max-time 2 "http://$addr/metrics"
}

# total METRIC SERVICE...: METRIC summed over the services.
total() {
  local m=$1 sum=0 v s
  shift
  for s in "$@"; do
    v=$(metrics "$s" | metric_sum "$m") || return 1
    sum=$((sum + v))
  done
  echo "$sum"
}

command -v curl >/dev/null || die "curl is needed to read the pods' /metrics"
for s in "${SERVICES[@]}"; do
  [[ -n $(compose ps -q "$s") ]] || die "$s is not running (docker compose up -d first)"
done

say "replacing random nodes among ${SERVICES[*]} for ${DURATION}s"
end=$((SECONDS + DURATION))
replaced=0
failed=0
while ((SECONDS < end)); do
  svc=${SERVICES[RANDOM % ${#SERVICES[@]}]}
  if "$SCRIPT_DIR/replace-node.sh" "$svc"; then
    replaced=$((replaced + 1))
  else
    failed=$((failed + 1))
  fi
  pause=${PAUSE:-$((5 + RANDOM % 11))}
  ((SECONDS + pause < end)) || break
  sleep "$pause"
done
say "$replaced replacements, $failed failed"

# Every pod healthy again.
deadline=$((SECONDS + TIMEOUT))
for s in "${SERVICES[@]}"; do
  until [[ $(docker inspect -f '{{.State.Health.Status}}' "$(compose ps -q "$s")") == healthy ]]; do
    ((SECONDS < deadline)) || die "$s not healthy after the chaos"
    sleep 1
  done
done

# Each subscriber catches up with what the publishers had generated.
generated=$(total "$M_GENERATED" "${PUBLISHERS[@]}") || die "cannot read $M_GENERATED from ${PUBLISHERS[*]}"
say "publishers had generated $generated values; waiting for every subscriber to deliver them"
ok=1
for s in "${SUBSCRIBERS[@]}"; do
  delivered=0
  until ((delivered >= generated)); do
    delivered=$(metrics "$s" | metric_sum "$M_DELIVERED" || echo 0)
    ((SECONDS < deadline)) || break
    ((delivered >= generated)) || sleep 1
  done
  m=$(metrics "$s") || die "cannot read $s /metrics"
  lost=$(metric_sum "$M_LOST" <<<"$m" || echo "?")
  dups=$(metric_sum "$M_DUPLICATES" <<<"$m" || echo "?")
  src=$(metric_label "$M_RESTORE" "$M_RESTORE_LABEL" <<<"$m" | head -n 1)
  gen_now=$(total "$M_GENERATED" "${PUBLISHERS[@]}" || echo "$generated")
  delivered=$(metric_sum "$M_DELIVERED" <<<"$m" || echo 0)
  say "$s: delivered $delivered (generated $gen_now), lost $lost, duplicates dropped $dups, restore source ${src:-?}"
  if ((delivered < generated)); then
    say "$s: LOST: delivered $delivered < $generated generated before the check"
    ok=0
  fi
  if ((delivered > gen_now)); then
    say "$s: DUPLICATED: delivered $delivered > $gen_now generated"
    ok=0
  fi
  if [[ $lost != 0 ]]; then
    say "$s: lost metric reads $lost"
    ok=0
  fi
done
((failed == 0)) || ok=0
((ok == 1)) || die "nothing lost or duplicated: NO ($failed failed replacements)"
say "ok: $replaced replacements, nothing lost, nothing duplicated"
