# shellcheck shell=bash
# lib.sh: helpers shared by replace-node.sh, chaos.sh and netns-cluster.sh.
# Source it; it defines functions and the metric names, and runs nothing.

# Prometheus metric names the scripts read from the pods' /metrics.
# shellcheck disable=SC2034 # used by the scripts that source this file
{
  M_RESTORE=${M_RESTORE:-steadfast_restore_source}           # gauge, 1 on the current source; label "source"
  M_RESTORE_LABEL=${M_RESTORE_LABEL:-source}                  # none | local | peer:<node id>
  M_GENERATED=${M_GENERATED:-steadfast_values_generated_total} # publisher: values generated
  M_DELIVERED=${M_DELIVERED:-steadfast_values_processed_total} # subscriber: distinct values applied
  M_DUPLICATES=${M_DUPLICATES:-steadfast_duplicates_dropped_total}
  M_LOST=${M_LOST:-steadfast_values_lost_total}
  M_MEMBERS=${M_MEMBERS:-steadfast_membership_members}
}

# metric_sum NAME [REGEX]: sum of the samples of metric NAME (whose
# "name{labels}" part matches REGEX, when given) in the Prometheus text on
# stdin. Prints the sum as an integer; fails when there is no such sample.
metric_sum() {
  awk -v name="$1" -v re="${2:-}" '
    /^#/ || NF < 2 { next }
    {
      key = $0; sub(/[ \t]+[^ \t]+$/, "", key)
      n = key; sub(/\{.*/, "", n)
      if (n != name) next
      if (re != "" && key !~ re) next
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

# duration_s 90s|5m|1h|42: seconds.
duration_s() {
  case $1 in
    *h) echo $((${1%h} * 3600)) ;;
    *m) echo $((${1%m} * 60)) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
  esac
}
