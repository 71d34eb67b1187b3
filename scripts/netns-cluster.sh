#!/usr/bin/env bash
# netns-cluster.sh: steadfast's kill-and-replace scenario on network-namespace
# hosts, the way containers run it: every pod is its own host with its own IP.
#
# Usage (as root, needs iproute2's `ip netns`):
#   scripts/netns-cluster.sh check      can this machine run it? exit 0, or 3 with the reason
#   scripts/netns-cluster.sh selftest   the network plumbing alone, with a trivial HTTP workload
#   scripts/netns-cluster.sh scenario   the pods: kill a subscriber host, replace it (default)
#   scripts/netns-cluster.sh cleanup    remove leftovers of earlier, aborted runs
#
# Topology. A "switch" namespace holds a bridge; each host is a namespace with
# one veth pair into that bridge, on the test subnet 10.213.0.0/24, which exists
# only inside this run's namespaces (the machine's own network is never
# touched, and nothing is sent outside these namespaces):
#
#   publisher 10.213.0.10   subscriber-1 10.213.0.11   subscriber-2 10.213.0.12
#   replacement of subscriber-1: a NEW namespace, 10.213.0.21, empty data dir
#
# Scenario. Runs the real pods with their real flags (binding 0.0.0.0 as in
# compose, so each pod must advertise its host's IP); SIGKILLs subscriber-1
# and deletes its host; starts subscriber-1 again on the new host (same node
# id, different IP, empty data dir); then checks from the pods' /metrics that
# the replacement restored its state from a peer (restore source peer:<id>)
# and that every subscriber ends with every value exactly once.
#
# Names are unique per run (sfnc-<pid>-...). Everything the run creates
# (namespaces, processes in them, the work dir) is removed on exit, also on
# failure or Ctrl-C; namespaces left by runs that were killed with SIGKILL are
# removed by the next run (or by `cleanup`).
#
# Environment:
#   BIN_DIR     directory holding publisher and subscriber binaries
#               (default: go build ./cmd/publisher ./cmd/subscriber)
#   PROBE       sfprobe binary (default: go build ./internal/deploytest/sfprobe)
#   WORK_DIR    data dirs and logs (default: a new temp dir, removed on exit)
#   KEEP_WORK=1 keep WORK_DIR on exit (logs of a failed run)
#   RATE BATCH BEATS   the publisher's stream (default 20ms, 16, 600)
#   TIMEOUT     seconds allowed for each wait (default 60)
#   KILL_PUBLISHER=1   scenario: also kill the publisher's host at half the stream
#                      and replace it on 10.213.0.20 (same node id, empty disk)
#   BIND_EXPLICIT=1    pods bind their host's IP (default: 0.0.0.0, as in compose)
#   METRICS_DUMP=DIR   scenario: save each pod's /metrics mid-stream as DIR/<host>.prom
#   SF_FAIL_AT=setup   fail on purpose after the topology is up (tests the cleanup)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SCRIPT_DIR/lib.sh"
PREFIX=sfnc
RUN="$PREFIX-$$"
SUBNET=10.213.0
SW="$RUN-sw"
TIMEOUT=${TIMEOUT:-60}
RATE=${RATE:-20ms}
BATCH=${BATCH:-16}
BEATS=${BEATS:-600}
CLUSTER_KEY=${CLUSTER_KEY:-$(printf '%s' 'netns-cluster-test-key-32-bytes!' | base64)}

NAMESPACES=()       # every namespace this run created, in creation order
declare -A HOST_NS  # host name -> namespace
declare -A HOST_IP  # host name -> IP
declare -A POD_PID  # host name -> pid of the pod (or workload) running there
declare -A POD_DATA # host name -> the pod's data dir
WORK_CREATED=0

log() { printf 'netns-cluster: %s\n' "$*"; }
die() {
  printf 'netns-cluster: FAIL: %s\n' "$*" >&2
  exit 1
}

# ---------------------------------------------------------------- cleanup --

# kill_ns_procs NS: SIGKILL every process inside namespace NS (all of them
# were started by this script).
kill_ns_procs() {
  local pids
  pids=$(ip netns pids "$1" 2>/dev/null || true)
  if [[ -n $pids ]]; then
    # shellcheck disable=SC2086 # one pid per word
    kill -9 $pids 2>/dev/null || true
  fi
}

cleanup() {
  local rc=${SIGNAL_RC:-$?} i ns
  # Only the script's own shell cleans up, never a subshell that inherited
  # the trap.
  [[ $BASHPID == "$$" ]] || return 0
  set +e
  trap - EXIT INT TERM
  # A signal can arrive while a command's output is redirected: report on
  # the script's own stdout and stderr (saved as fds 3 and 4 at start).
  exec 1>&3 2>&4
  if [[ $rc -ne 0 && $WORK_CREATED -eq 1 ]]; then
    for f in "$WORK_DIR"/*.log; do
      [[ -f $f ]] || continue
      printf '\n--- last lines of %s ---\n' "$(basename "$f")" >&2
      tail -n 15 "$f" >&2
    done
  fi
  {
    for ns in "${NAMESPACES[@]}"; do
      kill_ns_procs "$ns"
    done
    wait
  } 2>/dev/null # no "Killed" job notices
  for ((i = ${#NAMESPACES[@]} - 1; i >= 0; i--)); do
    ip netns del "${NAMESPACES[i]}" 2>/dev/null
  done
  if [[ $WORK_CREATED -eq 1 && ${KEEP_WORK:-0} != 1 ]]; then
    rm -rf "$WORK_DIR"
  elif [[ $WORK_CREATED -eq 1 ]]; then
    log "work dir kept: $WORK_DIR"
  fi
  log "cleaned up $RUN (exit $rc)"
  exit "$rc"
}

# clean_stale removes namespaces of earlier runs whose script is gone.
clean_stale() {
  local ns pid cmdline
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    [[ $ns =~ ^$PREFIX-([0-9]+)- ]] || continue
    pid=${BASH_REMATCH[1]}
    [[ $pid == "$$" ]] && continue
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
    if [[ $cmdline == *netns-cluster* ]]; then
      continue # a run still in progress
    fi
    log "removing leftover namespace $ns"
    kill_ns_procs "$ns"
    ip netns del "$ns" 2>/dev/null || true
  done
}

# --------------------------------------------------------------- topology --

check() {
  [[ $(id -u) -eq 0 ]] || { echo "netns-cluster: needs root (ip netns)"; return 3; }
  command -v ip >/dev/null || { echo "netns-cluster: iproute2 (ip) is not installed"; return 3; }
  ip netns list >/dev/null 2>&1 || { echo "netns-cluster: 'ip netns' is unavailable"; return 3; }
  local a="$PREFIX-$$-chka" b="$PREFIX-$$-chkb" ok=0
  if ip netns add "$a" 2>/dev/null; then
    if ip netns add "$b" 2>/dev/null; then
      if ip -n "$a" link add br0 type bridge 2>/dev/null &&
        ip -n "$a" link add v0 type veth peer name eth0 netns "$b" 2>/dev/null; then
        ok=1
      fi
      ip netns del "$b" 2>/dev/null
    fi
    ip netns del "$a" 2>/dev/null
  fi
  if [[ $ok -ne 1 ]]; then
    echo "netns-cluster: cannot create network namespaces, bridges or veth pairs here (no CAP_NET_ADMIN/CAP_SYS_ADMIN?)"
    return 3
  fi
  echo "netns-cluster: ok"
}

new_ns() {
  ip netns add "$1" || die "ip netns add $1"
  NAMESPACES+=("$1")
  ip -n "$1" link set lo up
}

make_switch() {
  new_ns "$SW"
  ip -n "$SW" link add br0 type bridge
  ip -n "$SW" link set br0 up
}

# add_host NAME LAST_OCTET: a new namespace with eth0 = 10.213.0.LAST_OCTET/24
# plugged into the switch.
add_host() {
  local name=$1 ip="$SUBNET.$2" ns="$RUN-$1-$2"
  new_ns "$ns"
  ip -n "$SW" link add "v-$2" type veth peer name eth0 netns "$ns"
  ip -n "$SW" link set "v-$2" master br0 up
  ip -n "$ns" addr add "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
  HOST_NS[$name]=$ns
  HOST_IP[$name]=$ip
}

# del_host NAME: the host is gone: its processes, its namespace, its cable.
del_host() {
  local ns=${HOST_NS[$1]} i
  kill_ns_procs "$ns"
  if [[ -n ${POD_PID[$1]:-} ]]; then
    wait "${POD_PID[$1]}" 2>/dev/null || true
  fi
  # Unplug the cable now (deleting one end of a veth pair deletes both);
  # the kernel tears down a deleted namespace's devices asynchronously.
  ip -n "$SW" link del "v-${HOST_IP[$1]##*.}" 2>/dev/null || true
  ip netns del "$ns"
  for i in "${!NAMESPACES[@]}"; do
    [[ ${NAMESPACES[i]} == "$ns" ]] && unset 'NAMESPACES[i]'
  done
  NAMESPACES=("${NAMESPACES[@]}")
  unset 'HOST_NS[$1]' 'HOST_IP[$1]' 'POD_PID[$1]' 'POD_DATA[$1]'
}

# on HOST CMD...: run CMD inside HOST's namespace.
on() {
  local ns=${HOST_NS[$1]}
  shift
  ip netns exec "$ns" "$@"
}

# fetch HOST URL: GET URL from inside HOST's namespace.
fetch() {
  on "$1" "$PROBE" get -timeout 2s "$2"
}

# wait_for DESC CMD...: poll CMD every 250 ms until it succeeds, for TIMEOUT s.
wait_for() {
  local desc=$1 deadline=$((SECONDS + TIMEOUT))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${TIMEOUT}s waiting for $desc"
    sleep 0.25
  done
}

# wait_pod HOST DESC CMD...: wait_for, but fail at once if HOST's pod exits.
wait_pod() {
  local host=$1 desc=$2 deadline=$((SECONDS + TIMEOUT))
  shift 2
  until "$@" >/dev/null 2>&1; do
    alive "$host" || die "the pod on $host exited while waiting for $desc (see its log below)"
    ((SECONDS < deadline)) || die "timed out after ${TIMEOUT}s waiting for $desc"
    sleep 0.25
  done
}

setup_work() {
  if [[ -z ${WORK_DIR:-} ]]; then
    WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/$RUN.XXXXXX")
    WORK_CREATED=1
    log "work dir $WORK_DIR (removed on exit)"
  else
    mkdir -p "$WORK_DIR"
  fi
  mkdir -p "$WORK_DIR/bin"
  if [[ -z ${PROBE:-} ]]; then
    log "building sfprobe"
    (cd "$ROOT" && go build -o "$WORK_DIR/bin/sfprobe" ./internal/deploytest/sfprobe) || die "go build sfprobe"
    PROBE=$WORK_DIR/bin/sfprobe
  fi
  [[ -x $PROBE ]] || die "PROBE=$PROBE is not executable"
}

# --------------------------------------------------------------- selftest --

start_probe() {
  local host=$1
  # A simple command, not a function, in the background: the child execs
  # ip (which execs sfprobe), so $! is the workload's pid and no subshell
  # copy of this script is left around.
  SFPROBE_NAME=$host ip netns exec "${HOST_NS[$host]}" "$PROBE" serve "${HOST_IP[$host]}:8080" >>"$WORK_DIR/$host.log" 2>&1 &
  POD_PID[$host]=$!
}

# reach FROM TO: FROM gets TO's answer over the bridge, and it names TO.
reach() {
  local out
  out=$(fetch "$1" "http://${HOST_IP[$2]}:8080/") && [[ $out == "sfprobe ${HOST_IP[$2]}:8080 $2" ]]
}

selftest() {
  setup_work
  make_switch
  add_host a 10
  add_host b 11
  add_host c 12
  log "hosts: a=${HOST_IP[a]} b=${HOST_IP[b]} c=${HOST_IP[c]} (namespaces $RUN-*)"
  [[ ${SF_FAIL_AT:-} == setup ]] && die "failing on purpose after setup (SF_FAIL_AT=setup)"
  local h f t
  for h in a b c; do start_probe "$h"; done
  for h in a b c; do wait_for "probe on $h" reach "$h" "$h"; done
  for f in a b c; do
    for t in a b c; do
      reach "$f" "$t" || die "$f cannot reach $t at ${HOST_IP[$t]}"
    done
  done
  log "connectivity: every host reaches every host over the bridge"

  # Replace host b: SIGKILL its workload, delete the host, start a new host
  # with a different IP and the same name.
  local old_ip=${HOST_IP[b]}
  kill -9 "${POD_PID[b]}"
  del_host b
  add_host b 21
  start_probe b
  wait_for "probe on replacement b" reach b b
  for f in a c; do
    reach "$f" b || die "$f cannot reach the replacement b at ${HOST_IP[b]}"
    if fetch "$f" "http://$old_ip:8080/" >/dev/null 2>&1; then
      die "$f still reaches the old address $old_ip"
    fi
  done
  log "replacement: b moved from $old_ip to ${HOST_IP[b]}; a and c reach it, the old address is gone"
  log "selftest ok"
}

# --------------------------------------------------------------- scenario --

# start_pod HOST ROLE NODE_ID [EXTRA FLAGS...]: run a pod on HOST with its
# real flags and a new, empty data dir; its log is $WORK_DIR/HOST-<ip>.log.
start_pod() {
  local host=$1 role=$2 id=$3 ip=${HOST_IP[$1]} h seeds=()
  # As in docker-compose.yml: bind 0.0.0.0 and let the pod advertise the
  # host's own (only) address; BIND_EXPLICIT=1 binds the host's IP instead.
  local BIND_HOST=0.0.0.0
  [[ ${BIND_EXPLICIT:-0} == 1 ]] && BIND_HOST=$ip
  shift 3
  for h in "${!HOST_IP[@]}"; do
    [[ $h == "$host" ]] || seeds+=("${HOST_IP[$h]}:7946")
  done
  local data="$WORK_DIR/data/$host-${ip##*.}"
  mkdir -p "$data"
  [[ -z $(ls -A "$data") ]] || die "data dir $data is not empty"
  local join
  join=$(
    IFS=,
    echo "${seeds[*]}"
  )
  POD_DATA[$host]=$data
  local log="$WORK_DIR/$host-${ip##*.}.log"
  log "start $role $id on $host ($ip), data dir ${data#"$WORK_DIR"/} (empty), seeds $join, bind $BIND_HOST"
  # A simple command in the background (see start_probe): $! is the pod.
  ip netns exec "${HOST_NS[$host]}" "$BIN_DIR/$role" \
    --node-id "$id" --data-dir "$data" --join "$join" --cluster-key "$CLUSTER_KEY" \
    --bind "$BIND_HOST:7946" --data-endpoint "$BIND_HOST:40123" --metrics-addr ":9090" \
    --membership local --log-level "${LOG_LEVEL:-info}" "$@" >>"$log" 2>&1 &
  POD_PID[$host]=$!
}

# pod_metrics HOST: the pod's /metrics, fetched inside its namespace.
pod_metrics() {
  fetch "$1" "http://127.0.0.1:9090/metrics"
}

# healthy HOST: the pod answers /healthz.
healthy() {
  fetch "$1" "http://127.0.0.1:9090/healthz" >/dev/null
}

# alive HOST: the pod's process is still running (an exited child stays a
# zombie until waited for, so kill -0 is not enough).
alive() {
  local st
  st=$(awk '{print $3}' "/proc/${POD_PID[$1]}/stat" 2>/dev/null) || return 1
  [[ -n $st && $st != Z ]]
}

# metric HOST NAME [REGEX]: a metric of HOST's pod (sum of its samples).
metric() {
  pod_metrics "$1" | metric_sum "${@:2}"
}

# delivered_at_least HOST N
delivered_at_least() {
  local d
  d=$(metric "$1" "$M_DELIVERED") && ((d >= $2))
}

# has_tally HOST: the subscriber reports a tally for publisher-1.
has_tally() {
  metric "$1" "$M_T_LAST" 'publisher="publisher-1"' >/dev/null
}

# restored_from_peer HOST: the pod reports a restore source peer:<id>.
restored_from_peer() {
  local src
  src=$(pod_metrics "$1" | metric_label "$M_RESTORE" "$M_RESTORE_LABEL" | sed -n 1p)
  [[ $src == peer:* ]]
}

scenario() {
  setup_work
  if [[ -z ${BIN_DIR:-} ]]; then
    log "building the pods"
    (cd "$ROOT" && CGO_ENABLED=0 go build -o "$WORK_DIR/bin/" ./cmd/publisher ./cmd/subscriber) || die "go build the pods"
    BIN_DIR=$WORK_DIR/bin
  fi
  [[ -x $BIN_DIR/publisher && -x $BIN_DIR/subscriber ]] || die "BIN_DIR=$BIN_DIR lacks publisher or subscriber"
  local total=$((BEATS * BATCH)) h
  ((total > 0)) || die "BEATS and BATCH must be > 0"

  make_switch
  add_host publisher 10
  add_host subscriber-1 11
  add_host subscriber-2 12
  [[ ${SF_FAIL_AT:-} == setup ]] && die "failing on purpose after setup (SF_FAIL_AT=setup)"
  start_pod subscriber-1 subscriber subscriber-1
  start_pod subscriber-2 subscriber subscriber-2
  start_pod publisher publisher publisher-1 --rate "$RATE" --batch "$BATCH" --beats "$BEATS" --min-subscribers 2
  for h in publisher subscriber-1 subscriber-2; do
    wait_pod "$h" "$h healthy" healthy "$h"
  done
  log "all pods healthy; stream of $total values ($BEATS beats x $BATCH every $RATE)"

  # Let subscriber-1 get a quarter of the stream, then its host dies.
  local quarter=$((total / 4))
  wait_pod subscriber-1 "subscriber-1 to deliver $quarter values" delivered_at_least subscriber-1 "$quarter"
  local before old_ip=${HOST_IP[subscriber-1]}
  local old_epoch new_epoch
  old_epoch=$(metric subscriber-1 "$M_EPOCH") || die "subscriber-1 reports no $M_EPOCH"
  if [[ -n ${METRICS_DUMP:-} ]]; then
    for h in publisher subscriber-2; do
      pod_metrics "$h" >"$METRICS_DUMP/$h.prom" || die "$h /metrics"
    done
  fi
  before=$(metric subscriber-1 "$M_DELIVERED" || echo "?")
  kill -9 "${POD_PID[subscriber-1]}"
  local t0
  t0=$(now_ms)
  del_host subscriber-1
  log "killed subscriber-1 (SIGKILL) on $old_ip after $before values delivered; its host is gone"

  # The replacement: a new host, a different IP, same node id, empty disk.
  add_host subscriber-1 21
  start_pod subscriber-1 subscriber subscriber-1
  wait_pod subscriber-1 "replacement subscriber-1 healthy" healthy subscriber-1
  wait_pod subscriber-1 "replacement subscriber-1 to restore from a peer" restored_from_peer subscriber-1
  local src
  src=$(pod_metrics subscriber-1 | metric_label "$M_RESTORE" "$M_RESTORE_LABEL" | sed -n 1p)
  log "replacement subscriber-1 on ${HOST_IP[subscriber-1]} (was $old_ip) restored from $src in $(elapsed "$t0")"
  new_epoch=$(metric subscriber-1 "$M_EPOCH") || die "replacement subscriber-1 reports no $M_EPOCH"
  ((new_epoch > old_epoch)) || die "replacement subscriber-1 has epoch $new_epoch, not above the killed one's $old_epoch"
  log "replacement subscriber-1 epoch $new_epoch (killed incarnation: $old_epoch)"
  # What it restored is exactly a prefix 1..L of the stream (closed form).
  wait_pod subscriber-1 "replacement subscriber-1 to report its tally" has_tally subscriber-1
  local verdict
  verdict=$(pod_metrics subscriber-1 | tally_check publisher-1) || die "replacement subscriber-1: $verdict"
  log "replacement subscriber-1, restored state: $verdict"

  if [[ -n ${METRICS_DUMP:-} ]]; then
    pod_metrics subscriber-1 >"$METRICS_DUMP/subscriber-1.prom" || die "subscriber-1 /metrics"
  fi

  if [[ ${KILL_PUBLISHER:-0} == 1 ]]; then
    replace_publisher "$total"
  fi

  # The stream completes: each subscriber delivers everything, writes its
  # final state and exits 0; then the publisher is stopped (SIGTERM).
  local rc
  for h in subscriber-1 subscriber-2; do
    wait_for "$h to finish the stream and exit" exited "$h"
    rc=0
    wait "${POD_PID[$h]}" || rc=$?
    ((rc == 0)) || die "$h exited with status $rc"
    log "$h finished (exit 0)"
  done
  if alive publisher; then
    kill -TERM "${POD_PID[publisher]}"
    wait_for "publisher to stop after SIGTERM" exited publisher
  fi
  rc=0
  wait "${POD_PID[publisher]}" || rc=$?
  ((rc == 0)) || die "publisher exited with status $rc"
  log "publisher stopped (exit 0)"
  verify "$total"
  log "scenario ok"
}

# replace_publisher N: at half the stream, the publisher's host dies too and
# the publisher comes back on a new host (10.213.0.20), same node id, empty
# data dir; it must restore from a peer, with a higher epoch, and go on.
replace_publisher() {
  local n=$1 half=$(($1 / 2)) old_ip=${HOST_IP[publisher]} old_epoch new_epoch src t0 last
  wait_pod publisher "publisher to generate $half values" published_at_least "$half"
  old_epoch=$(metric publisher "$M_EPOCH") || die "publisher reports no $M_EPOCH"
  last=$(metric publisher "$M_PUBLISHED" || echo "?")
  kill -9 "${POD_PID[publisher]}"
  t0=$(now_ms)
  del_host publisher
  log "killed publisher-1 (SIGKILL) on $old_ip after $last of $n values generated; its host is gone"
  add_host publisher 20
  start_pod publisher publisher publisher-1 --rate "$RATE" --batch "$BATCH" --beats "$BEATS" --min-subscribers 2
  wait_pod publisher "replacement publisher healthy" healthy publisher
  wait_pod publisher "replacement publisher to restore from a peer" restored_from_peer publisher
  src=$(pod_metrics publisher | metric_label "$M_RESTORE" "$M_RESTORE_LABEL" | sed -n 1p)
  new_epoch=$(metric publisher "$M_EPOCH") || die "replacement publisher reports no $M_EPOCH"
  ((new_epoch > old_epoch)) || die "replacement publisher has epoch $new_epoch, not above the killed one's $old_epoch"
  log "replacement publisher-1 on ${HOST_IP[publisher]} (was $old_ip) restored from $src in $(elapsed "$t0"), epoch $new_epoch (killed incarnation: $old_epoch)"
}

# published_at_least N: the publisher generated at least N values.
published_at_least() {
  local p
  p=$(metric publisher "$M_PUBLISHED") && ((p >= $1))
}

# exited HOST: the pod's process is gone.
exited() {
  ! alive "$1"
}

# verify N: each subscriber's final state (final-state.json in its data dir)
# holds every value 1..N exactly once, by the closed form; the replacement's
# says it restored from a peer.
verify() {
  local n=$1 h f out ok=1
  for h in subscriber-1 subscriber-2; do
    f=${POD_DATA[$h]}/final-state.json
    [[ -f $f ]] || die "$h left no final state ($f)"
    if ! out=$("$PROBE" final "$f" "$n" 2>&1); then
      ok=0
    fi
    printf '%s\n' "$out" | while IFS= read -r line; do log "$line"; done
    if [[ $h == subscriber-1 && $out != *"(restore source peer:"* ]]; then
      log "subscriber-1's final state does not say it restored from a peer"
      ok=0
    fi
  done
  ((ok == 1)) || die "lost or duplicated values"
  log "verified: every subscriber delivered each of the $n values exactly once"
}

# ------------------------------------------------------------------- main --

cmd=${1:-scenario}
case $cmd in
  check)
    check
    ;;
  cleanup)
    check >/dev/null || exit 3
    clean_stale
    ;;
  selftest | scenario)
    check >/dev/null || { check; exit 3; }
    exec 3>&1 4>&2
    trap cleanup EXIT
    trap 'SIGNAL_RC=130; exit 130' INT
    trap 'SIGNAL_RC=143; exit 143' TERM
    log "run $RUN"
    clean_stale
    "$cmd"
    ;;
  -h | --help | help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    ;;
  *)
    echo "usage: $0 [check|selftest|scenario|cleanup]" >&2
    exit 2
    ;;
esac
