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
# Check, once the loop is over: every pod healthy; for each publisher, the
# values it had generated (G, its last seq) are read; each subscriber must
# then apply up to G (catching up through replay) within TIMEOUT seconds, and
# its tally for that publisher must match the closed form of 1..its last seq
# (counts per FizzBuzz category and the sum of the plain values): a value
# lost or applied twice breaks it. The duplicates each subscriber dropped
# (replays below its watermark, expected after replacements) are printed for
# information.
#
# It acts on the compose project of this checkout (see replace-node.sh).
# Exit 2 on bad usage (checked before anything else is done).
#
# Environment: COMPOSE, TIMEOUT (default 180), PAUSE, SERVICES (default
# "publisher subscriber-1 subscriber-2"), PUBLISHERS (default "publisher"),
# SUBSCRIBERS (default "subscriber-1 subscriber-2"); metric names as in
# scripts/lib.sh. Exit 0 when every check passes.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SCRIPT_DIR/lib.sh"

usage() {
  echo "usage: $0 [DURATION]   (DURATION: whole seconds, or a number with s, m or h: 90, 90s, 5m, 1h; default 5m)"
  echo "       $0 --help"
}
help_if_asked "$0" "${1:-}"
if [[ $# -gt 1 ]]; then
  usage >&2
  exit 2
fi
DURATION_ARG=${1:-5m}
if ! [[ $DURATION_ARG =~ ^[0-9]+[smh]?$ ]] || [[ $DURATION_ARG =~ ^0+[smh]?$ ]]; then
  echo "chaos: bad duration '$DURATION_ARG'" >&2
  usage >&2
  exit 2
fi
for v in TIMEOUT PAUSE; do
  if [[ -n ${!v:-} && ! ${!v} =~ ^[0-9]+$ ]]; then
    echo "chaos: $v must be a whole number of seconds, not '${!v}'" >&2
    exit 2
  fi
done

cd "$SCRIPT_DIR/.."

DURATION=$(duration_s "$((10#${DURATION_ARG%[smh]}))${DURATION_ARG##*[0-9]}")
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

command -v curl >/dev/null || die "curl is needed to read the pods' /metrics"
for s in "${SERVICES[@]}"; do
  [[ -n $(compose ps -q "$s") ]] || die "$s is not running (docker compose up -d first)"
done

project=$(compose config 2>/dev/null | sed -n 's/^name: //p' | sed -n 1p)
say "replacing random nodes among ${SERVICES[*]} of project ${project:-?} for ${DURATION}s"
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

# Each subscriber catches up with what each publisher had generated, and its
# tally for that publisher is exactly the stream 1..last seq (closed form:
# nothing lost, nothing applied twice).
ok=1
for p in "${PUBLISHERS[@]}"; do
  pm=$(metrics "$p") || die "cannot read $p /metrics"
  pub_id=$(metric_label steadfast_info node_id <<<"$pm" | sed -n 1p)
  generated=$(metric_sum "$M_PUBLISHED" <<<"$pm") || die "$p has no $M_PUBLISHED"
  [[ -n $pub_id ]] || die "$p reports no node id (steadfast_info)"
  say "$p ($pub_id) had generated $generated values; waiting for every subscriber to apply them"
  for s in "${SUBSCRIBERS[@]}"; do
    last=0
    until ((last >= generated)); do
      last=$(metrics "$s" | metric_sum "$M_T_LAST" "publisher=\"$pub_id\"" || echo 0)
      ((SECONDS < deadline)) || break
      ((last >= generated)) || sleep 1
    done
    m=$(metrics "$s") || die "cannot read $s /metrics"
    dups=$(metric_sum "$M_DUPLICATES" <<<"$m" || echo "?")
    src=$(metric_label "$M_RESTORE" "$M_RESTORE_LABEL" <<<"$m" | sed -n 1p)
    if verdict=$(tally_check "$pub_id" <<<"$m"); then :; else ok=0; fi
    say "$s: $verdict; duplicates dropped $dups; restore source ${src:-?}"
    if ((last < generated)); then
      say "$s: LOST: applied up to $last of the $generated values $pub_id had generated"
      ok=0
    fi
  done
done
((failed == 0)) || ok=0
((ok == 1)) || die "nothing lost or duplicated: NO ($failed failed replacements)"
say "ok: $replaced replacements, nothing lost, nothing duplicated"
