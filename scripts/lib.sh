# shellcheck shell=bash
# lib.sh: helpers shared by replace-node.sh, chaos.sh and netns-cluster.sh.
# Source it; it defines functions and the metric names, and runs nothing.

# Prometheus metric names the scripts read from the pods' /metrics (the pods
# document them in internal/pod; every one is checked against a real pod's
# /metrics by internal/deploytest's namespace test).
# shellcheck disable=SC2034 # used by the scripts that source this file
{
  M_RESTORE=steadfast_restore_source         # 1, label source: none | local | peer:<node id>
  M_RESTORE_LABEL=source
  M_PUBLISHED=steadfast_publisher_last_seq   # publisher: values generated, all incarnations
  M_DELIVERED=steadfast_logger_applied_values         # subscriber: values applied, per publisher, restored across incarnations
  M_DUPLICATES=steadfast_duplicates_dropped_total
  M_LOST=steadfast_logger_lost_values            # values the publisher no longer had (lost)
  M_MEMBERS=steadfast_membership_members
  M_PROCESSED=steadfast_values_processed_total # subscriber: values through the worker, this incarnation
  M_ACKS_IN=steadfast_acks_received_total      # publisher: acks from subscribers, this incarnation
  M_EPOCH=steadfast_epoch                    # this incarnation's epoch
  # the subscriber's tally per publisher, one consistent copy per scrape
  M_T_VALUES=steadfast_logger_values         # label category: fizz | buzz | fizzbuzz | value
  M_T_SUM=steadfast_logger_plain_values_summed
  M_T_FIRST=steadfast_logger_first_seq
  M_T_LAST=steadfast_logger_last_seq
  M_T_DEAD=steadfast_logger_dead_lettered
  M_T_OOO=steadfast_logger_out_of_order
}

# metric_sum NAME [REGEX...]: sum of the samples of metric NAME whose
# "name{labels}" part matches every REGEX, in the Prometheus text on stdin.
# Prints the sum as an integer; fails when there is no such sample.
metric_sum() {
  local name=$1 res
  shift
  res=$(printf '%s\n' "$@")
  awk -v name="$name" -v res="$res" '
    BEGIN { nre = (res == "") ? 0 : split(res, re, "\n") }
    /^#/ || NF < 2 { next }
    {
      key = $0; sub(/[ \t]+[^ \t]+$/, "", key)
      n = key; sub(/\{.*/, "", n)
      if (n != name) next
      for (i = 1; i <= nre; i++) if (key !~ re[i]) next
      sum += $NF; found = 1
    }
    END { if (!found) exit 1; printf "%.0f\n", sum }'
}

# metric_label NAME LABEL: the values of label LABEL on the non-zero samples
# of metric NAME in the Prometheus text on stdin, one per line.
metric_label() {
  awk -v name="$1" -v label="$2" '
    /^#/ || NF < 2 { next }
    {
      key = $0; sub(/[ \t]+[^ \t]+$/, "", key)
      n = key; sub(/\{.*/, "", n)
      if (n != name || $NF + 0 == 0) next
      pat = label "=\"[^\"]*\""
      if (match(key, pat)) {
        v = substr(key, RSTART + length(label) + 2, RLENGTH - length(label) - 3)
        print v
      }
    }'
}

# now_ms: wall clock in milliseconds.
now_ms() {
  local ns
  ns=$(date +%s%N)
  echo $((ns / 1000000))
}

# elapsed SINCE_MS: "12.345s" since SINCE_MS.
elapsed() {
  local ms=$(($(now_ms) - $1))
  printf '%d.%03ds' $((ms / 1000)) $((ms % 1000))
}

# span FROM_MS TO_MS: "1.234s" (negative spans as "-0.010s").
span() {
  local ms=$(($2 - $1)) sign=""
  ((ms < 0)) && sign=- && ms=$((-ms))
  printf '%s%d.%03ds' "$sign" $((ms / 1000)) $((ms % 1000))
}

# duration_s 90s|5m|1h|42: seconds.
duration_s() {
  case $1 in
    *h) echo $((${1%h} * 3600)) ;;
    *m) echo $((${1%m} * 60)) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
  esac
}

# tally_check PUBLISHER: reads a subscriber's /metrics on stdin and checks its
# tally for PUBLISHER against the closed form of the stream 1..L, where L is
# the last seq it applied: count L, FizzBuzz L/15, Fizz L/3-L/15, Buzz
# L/5-L/15, the plain values and their sum. Any value lost or applied twice
# breaks it, at any moment, also mid-stream. Prints one line; fails when
# broken (or when the subscriber has no tally for PUBLISHER yet).
tally_check() {
  local pub=$1 m sel l first count fizz buzz fb plain sum dead ooo lost
  m=$(cat)
  sel="publisher=\"$pub\""
  l=$(metric_sum "$M_T_LAST" "$sel" <<<"$m") || { echo "no tally for $pub"; return 1; }
  first=$(metric_sum "$M_T_FIRST" "$sel" <<<"$m")
  count=$(metric_sum "$M_DELIVERED" "$sel" <<<"$m")
  fizz=$(metric_sum "$M_T_VALUES" "$sel" 'category="fizz"' <<<"$m")
  buzz=$(metric_sum "$M_T_VALUES" "$sel" 'category="buzz"' <<<"$m")
  fb=$(metric_sum "$M_T_VALUES" "$sel" 'category="fizzbuzz"' <<<"$m")
  plain=$(metric_sum "$M_T_VALUES" "$sel" 'category="value"' <<<"$m")
  sum=$(metric_sum "$M_T_SUM" "$sel" <<<"$m")
  dead=$(metric_sum "$M_T_DEAD" "$sel" <<<"$m")
  ooo=$(metric_sum "$M_T_OOO" "$sel" <<<"$m")
  lost=$(metric_sum "$M_LOST" "$sel" <<<"$m")
  local t=$((l * (l + 1) / 2)) a=$((l / 3)) b=$((l / 5)) c=$((l / 15))
  local want_sum=$((t - 3 * (a * (a + 1) / 2) - 5 * (b * (b + 1) / 2) + 15 * (c * (c + 1) / 2)))
  local lost=0 dup=0 problems=()
  ((count < l)) && lost=$((l - count))
  ((count > l)) && dup=$((count - l))
  ((l == 0 || first == 1)) || problems+=("first seq $first")
  ((fb == c && fizz == a - c && buzz == b - c && plain == l - a - b + c)) ||
    problems+=("categories fizz $fizz buzz $buzz fizzbuzz $fb value $plain, want $((a - c)) $((b - c)) $c $((l - a - b + c))")
  # float64 gauges are exact up to 2^53
  if ((want_sum < 9007199254740992)); then
    ((sum == want_sum)) || problems+=("plain sum $sum, want $want_sum")
  fi
  ((dead == 0)) || problems+=("$dead dead-lettered")
  ((ooo == 0)) || problems+=("$ooo out of order")
  ((lost == 0)) || problems+=("$lost lost")
  if ((lost == 0 && dup == 0 && ${#problems[@]} == 0)); then
    echo "publisher $pub: values 1..$l each applied exactly once (count $count, sum $sum)"
    return 0
  fi
  echo "publisher $pub: BROKEN at last seq $l: count $count (lost $lost, duplicated $dup) ${problems[*]}"
  return 1
}

# help_if_asked SCRIPT ARG: when ARG is -h or --help, prints SCRIPT's header
# comment (from line 2 to its `set -euo` line) and exits 0.
help_if_asked() {
  case $2 in
    -h | --help)
      sed -n '2,/^set -euo/p' "$1" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
  esac
}
