#!/usr/bin/env bash
# Event-driven attach latency (issue 14): N "containers" (default 50) started one after another
# under isolfs's --attach prefix, without a hook; each measures from the inside how long after
# its first process appeared (its own mount namespace made) it first reads its own
# /proc/meminfo (MemTotal = its memory limit) and an isolfs /proc/vmstat. Goal: p99 ≤ 200 ms.
#
# A container here is what a runtime makes, without the runtime: a cgroup directory per v1
# controller (or one on v2) beneath a common parent (the --attach prefix) beneath the cgroup
# this shell is in, made with mkdir; then bench/attach-probe.c writes its pid into the cgroup's
# cgroup.procs files (as runc moves its init in), unshares its mount namespace (as runc's init
# then does) and polls both files every 1 ms. The daemon's periodic scan runs every 30 s (its
# default), so what attaches them within the run is the event path.
#
#   bench/attach-latency.sh              # N=50
#   N=200 GAP_MS=20 bench/attach-latency.sh
#
# Environment: N (50), GAP_MS (100: pause between two starts), TIMEOUT_MS (5000: how long a
# container waits for its files), ISOLFS_ARGS (extra daemon arguments).
# Prints each container's line (with PRINT_EACH=1), then p50/p90/p99/max of both latencies, the
# daemon's CPU over the run, and PASS/FAIL against the goal. Everything is undone on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

N=${N:-50}
GAP_MS=${GAP_MS:-100}
TIMEOUT_MS=${TIMEOUT_MS:-5000}
GOAL_P99_MS=200
LIMIT_BYTES=$((192 * 1024 * 1024))

bench_init
isolfs_available || die "isolfs is not built (npm run install && npm run build)"
PROBE="$BENCH_TMP/attach-probe"
gcc -O2 -Wall -Wextra -o "$PROBE" "$BENCH_DIR/attach-probe.c" || die "cannot compile bench/attach-probe.c"

create_cgroup lat
if is_pure_v2; then
  prefix="$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup)"
else
  prefix="$(own_cgroup_of memory)"
fi
prefix="${prefix%/}/isolfs-bench-lat-$$/"
start_isolfs isolfs --attach "$prefix" ${ISOLFS_ARGS:-}
cpu0=$(cpu_ms "$DAEMON_PID")

# make_container I: makes the cgroup directories of container I (children of every "lat"
# directory); PROCS: their cgroup.procs files. Not in a subshell: the cleanup list must grow.
make_container() {
  local i=$1 controller dir child
  PROCS=()
  local -A done_dirs=()
  for controller in "${V1_CONTROLLERS[@]}"; do
    dir=${CG_DIR["lat:$controller"]:-}
    [[ -n $dir && -z ${done_dirs[$dir]:-} ]] || continue
    done_dirs[$dir]=1
    child="$dir/c$i"
    mkdir "$child"
    BENCH_CGROUP_DIRS+=("$child")
    if [[ -f $child/cpuset.cpus && ! -s $child/cpuset.cpus ]]; then
      cat "$dir/cpuset.cpus" > "$child/cpuset.cpus"
      cat "$dir/cpuset.mems" > "$child/cpuset.mems"
    fi
    [[ -f $child/memory.limit_in_bytes ]] && echo "$LIMIT_BYTES" > "$child/memory.limit_in_bytes"
    [[ -f $child/memory.max ]] && echo "$LIMIT_BYTES" > "$child/memory.max"
    PROCS+=("$child/cgroup.procs")
  done
}

results="$BENCH_TMP/results"
: > "$results"
failed=0
for ((i = 1; i <= N; i++)); do
  make_container "$i"
  if line=$("$PROBE" join --limit-kb $((LIMIT_BYTES / 1024)) --timeout-ms "$TIMEOUT_MS" "${PROCS[@]}"); then :; else failed=$((failed + 1)); fi
  echo "$line" >> "$results"
  [[ ${PRINT_EACH:-0} == 1 ]] && log "c$i: $line"
  sleep "$(awk -v ms="$GAP_MS" 'BEGIN { printf "%.3f", ms / 1000 }')"
done
cpu1=$(cpu_ms "$DAEMON_PID")

# percentiles FIELD: p50 p90 p99 max in ms (nearest rank), -1 (not attached in time) counted as the timeout.
percentiles() {
  sed -n "s/.*$1=\(-\?[0-9]*\).*/\1/p" "$results" | awk -v t="$TIMEOUT_MS" '{ v = ($1 < 0 ? t * 1000 : $1); print v }' | sort -n |
    awk '{ a[NR] = $1 } END {
      r50 = int(NR * 0.50 + 0.999); r90 = int(NR * 0.90 + 0.999); r99 = int(NR * 0.99 + 0.999);
      printf "%.1f %.1f %.1f %.1f", a[r50] / 1000, a[r90] / 1000, a[r99] / 1000, a[NR] / 1000 }'
}
read -r m50 m90 m99 mmax <<< "$(percentiles meminfo_us)"
read -r v50 v90 v99 vmax <<< "$(percentiles vmstat_us)"
printf '\nEvent-driven attach, %d containers started without a hook (%s ms apart), from the first process in its own mount namespace:\n' "$N" "$GAP_MS"
printf '  %-32s %8s %8s %8s %8s\n' "first correct read of" p50 p90 p99 max
printf '  %-32s %6s ms %5s ms %5s ms %5s ms\n' /proc/meminfo "$m50" "$m90" "$m99" "$mmax"
printf '  %-32s %6s ms %5s ms %5s ms %5s ms\n' "/proc/vmstat (isolfs's)" "$v50" "$v90" "$v99" "$vmax"
printf '  not attached within %d ms: %d\n' "$TIMEOUT_MS" "$failed"
printf '  daemon CPU over the run: %d ms (%d ms per container)\n' $((cpu1 - cpu0)) $(((cpu1 - cpu0) / N))
worst=$(awk -v a="$m99" -v b="$v99" 'BEGIN { print (a > b ? a : b) }')
if awk -v w="$worst" -v g="$GOAL_P99_MS" 'BEGIN { exit !(w <= g) }' && [[ $failed == 0 ]]; then
  printf '  PASS: p99 %s ms <= %d ms\n' "$worst" "$GOAL_P99_MS"
else
  printf '  FAIL: p99 %s ms > %d ms (or some not attached)\n' "$worst" "$GOAL_P99_MS"
fi
