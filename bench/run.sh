#!/usr/bin/env bash
# Throughput of open + read + close on /proc files, read from INSIDE a memory-limited cgroup
# (256 MiB, beneath our own cgroup), side by side in one run for: the kernel's own file, isolfs
# (--loop poll and --loop thread) and LXCFS (lxcfs -l --enable-cfs), with 1 and 4 concurrent
# readers. Cells are interleaved over ROUNDS rounds (the target order rotates each round) and the
# median is reported, because the machine is noisy. Also reports each daemon's RSS and the CPU
# time it used while serving.
#
#   bench/run.sh                 # ~2 minutes
#   DURATION=3 ROUNDS=5 bench/run.sh  # longer, steadier
#
# Environment: DURATION (seconds per cell, default 1.5), ROUNDS (default 3), READERS ("1 4"),
# FILES ("meminfo stat cpuinfo"), ISOLFS_NO_BUILD=1 (use dist/ as it is, skip tsc),
# ISOLFS_SKIP=1 (kernel and LXCFS only), RESULTS_OUT=FILE (keep every cell's raw numbers),
# BASELINE=DIR (A/B in one interleaved run: the "poll" columns are this tree and the "thread"
# columns the built checkout DIR, e.g. a `git worktree` of the previous commit, both with
# --loop $LOOP, default poll: the way to show a change did not slow isolfs down),
# PIN=none|same|split: where readers and daemons run. none (default) leaves it to the scheduler,
# as in production; same pins daemons and readers to CPU 0; split pins daemons to CPU 1 and
# readers to CPU 0. On these VMs a FUSE round trip costs ~3-4x more when the reader and the
# daemon sit on different CPUs (measured; most likely the cost of a cross-CPU wakeup in a VM),
# so with PIN=none a cell's rounds can differ by that much depending on where the scheduler
# put them.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-1.5}
ROUNDS=${ROUNDS:-3}
READERS=${READERS:-"1 4"}
FILES=${FILES:-"meminfo stat cpuinfo"}
MEMORY_LIMIT_BYTES=$((256 * 1024 * 1024))
PIN=${PIN:-none}
case $PIN in
  none) READER_CMD=() ;;
  same) READER_CMD=(taskset -c 0) DAEMON_CPU=0 ;;
  split) READER_CMD=(taskset -c 0) DAEMON_CPU=1 ;;
  *) die "PIN must be none, same or split" ;;
esac
[[ $PIN == none || $(nproc) -ge 2 ]] || die "PIN=$PIN needs 2 CPUs"

bench_init
build_reader

TARGETS=(kernel lxcfs)
declare -A ROOT=([kernel]="")   # target -> directory prefix of its /proc files
declare -A PID=()               # daemon target -> pid

start_lxcfs lxcfs
ROOT[lxcfs]=$DAEMON_MNT
PID[lxcfs]=$DAEMON_PID

ISOLFS_STATUS=pending
if [[ ${ISOLFS_SKIP:-0} == 1 ]]; then
  ISOLFS_STATUS="skipped (ISOLFS_SKIP=1)"
elif { [[ ${ISOLFS_NO_BUILD:-0} == 1 ]] && isolfs_available; } || build_isolfs; then
  for loop in poll thread; do
    if [[ -n ${BASELINE:-} ]]; then
      # A/B: the second column is another checkout (built), both daemons with --loop $LOOP.
      if [[ $loop == thread ]]; then this_tree=$PROJECT_ROOT; PROJECT_ROOT=$BASELINE; fi
      start_isolfs "isolfs-$loop" --loop "${LOOP:-poll}"
      if [[ $loop == thread ]]; then PROJECT_ROOT=$this_tree; fi
    else
      start_isolfs "isolfs-$loop" --loop "$loop"
    fi
    ROOT[isolfs-$loop]=$DAEMON_MNT
    PID[isolfs-$loop]=$DAEMON_PID
    TARGETS+=("isolfs-$loop")
  done
  ISOLFS_STATUS=measured
else
  ISOLFS_STATUS="pending (does not build yet)"
fi

if [[ $PIN != none ]]; then
  # -a: every thread; threads started later inherit the mask from the thread that creates them.
  for target in "${!PID[@]}"; do taskset -a -p -c "$DAEMON_CPU" "${PID[$target]}" > /dev/null || die "cannot pin $target"; done
fi

create_cgroup bench memory=$MEMORY_LIMIT_BYTES

log "cgroup: ${CG_DIR[bench:memory]} (memory limit 256 MiB)"
log "sanity check, read from inside the cgroup:"
for target in "${TARGETS[@]}"; do
  for file in $FILES; do
    in_cgroup bench "$READER" -n 20 "${ROOT[$target]}/proc/$file" > /dev/null || die "$target: cannot read /proc/$file"
  done
  log "$(printf '  %-14s %s' "$target" "$(in_cgroup bench grep MemTotal "${ROOT[$target]}/proc/meminfo")")"
done

declare -A CPU_START_MS=() CPU_END_MS=()
for target in "${!PID[@]}"; do CPU_START_MS[$target]=$(cpu_ms "${PID[$target]}"); done

RESULTS="$BENCH_TMP/results"
: > "$RESULTS"
cells=$(( $(wc -w <<< "$FILES") * $(wc -w <<< "$READERS") * ${#TARGETS[@]} * ROUNDS ))
log "running $cells cells of ${DURATION}s (~$(awk -v c="$cells" -v d="$DURATION" 'BEGIN { printf "%.0f", c * (d + 0.05) }') s)"
for ((round = 1; round <= ROUNDS; round++)); do
  for file in $FILES; do
    for readers in $READERS; do
      # Rotate the target order each round so no target always runs right after another.
      for ((i = 0; i < ${#TARGETS[@]}; i++)); do
        target=${TARGETS[(i + round - 1) % ${#TARGETS[@]}]}
        out=$(in_cgroup bench "${READER_CMD[@]}" "$READER" -j "$readers" -d "$DURATION" "${ROOT[$target]}/proc/$file") \
          || die "$target /proc/$file with $readers readers failed"
        # ops=N seconds=S rate=R us_per_op=U bytes=B
        read -r ops _ rate us _ <<< "$(tr -s ' =' ' ' <<< "$out" | awk '{ print $2, $4, $6, $8, $10 }')"
        echo "$file $readers $target $round $rate $us $ops" >> "$RESULTS"
      done
    done
  done
  log "round $round/$ROUNDS done"
done

for target in "${!PID[@]}"; do CPU_END_MS[$target]=$(cpu_ms "${PID[$target]}"); done
if [[ -n ${RESULTS_OUT:-} ]]; then
  { echo "# file readers target round rate us_per_op ops"; cat "$RESULTS"; } > "$RESULTS_OUT"
fi

# --- report ---------------------------------------------------------------------------------

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
cell() { awk -v f="$1" -v r="$2" -v t="$3" -v col="$4" '$1 == f && $2 == r && $3 == t { print $col }' "$RESULTS" | median; }
spread() { # (max - min) / median of the rates, in percent
  awk -v f="$1" -v r="$2" -v t="$3" '$1 == f && $2 == r && $3 == t { print $5 }' "$RESULTS" | sort -n |
    awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; if (m > 0) printf "%.0f", (v[NR] - v[1]) * 100 / m }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }

echo
echo "isolfs vs LXCFS vs kernel: open+read+close per second, read from inside a 256 MiB memory cgroup"
echo "$(nproc) CPUs, kernel $(uname -r), lxcfs $(lxcfs --version 2>&1 | head -n 1), ${DURATION}s per cell, median of $ROUNDS rounds (±: max-min spread), PIN=$PIN"
echo "isolfs: $ISOLFS_STATUS"
echo
header="%-8s %3s %15s %15s %15s %15s %12s %12s %12s %12s\n"
[[ -z ${BASELINE:-} ]] || echo "A/B: poll columns = this tree, thread columns = $BASELINE (both --loop ${LOOP:-poll})"
printf "$header" file rdrs "kernel/s" "lxcfs/s" "isolfs-poll/s" "isolfs-thread/s" "poll/lxcfs" "thread/lxcfs" "poll/kernel" "thread/kernel"
for file in $FILES; do
  for readers in $READERS; do
    declare -A R=() S=()
    for target in kernel lxcfs isolfs-poll isolfs-thread; do
      R[$target]=$(cell "$file" "$readers" "$target" 5)
      S[$target]=$(spread "$file" "$readers" "$target")
      if [[ -n ${R[$target]} ]]; then S[$target]="${R[$target]} ±${S[$target]}%"; else S[$target]="pending"; fi
    done
    printf "$header" "$file" "$readers" "${S[kernel]}" "${S[lxcfs]}" "${S[isolfs-poll]}" "${S[isolfs-thread]}" \
      "$(ratio "${R[isolfs-poll]}" "${R[lxcfs]}")" "$(ratio "${R[isolfs-thread]}" "${R[lxcfs]}")" \
      "$(ratio "${R[isolfs-poll]}" "${R[kernel]}")" "$(ratio "${R[isolfs-thread]}" "${R[kernel]}")"
  done
done

echo
echo "latency: mean µs per open+read+close seen by one reader (median of rounds)"
printf "%-8s %3s %10s %10s %13s %15s\n" file rdrs kernel lxcfs isolfs-poll isolfs-thread
for file in $FILES; do
  for readers in $READERS; do
    row=()
    for target in kernel lxcfs isolfs-poll isolfs-thread; do
      v=$(cell "$file" "$readers" "$target" 6)
      row+=("${v:-pending}")
    done
    printf "%-8s %3s %10s %10s %13s %15s\n" "$file" "$readers" "${row[@]}"
  done
done

echo
echo "daemons: memory at the end, CPU time used during the measured cells"
printf "%-14s %10s %10s %10s %12s %14s\n" daemon "VmRSS kB" "VmHWM kB" "CPU ms" "ops served" "CPU µs/op"
for target in lxcfs isolfs-poll isolfs-thread; do
  if [[ -z ${PID[$target]:-} ]]; then
    printf "%-14s %10s\n" "$target" pending
    continue
  fi
  pid=${PID[$target]}
  pid_alive "$pid" || die "$target (pid $pid) died during the run"
  served=$(awk -v t="$target" '$3 == t { s += $7 } END { print s + 0 }' "$RESULTS")
  cpu=$((CPU_END_MS[$target] - CPU_START_MS[$target]))
  printf "%-14s %10s %10s %10s %12s %14s\n" "$target" "$(status_kb "$pid" VmRSS)" "$(status_kb "$pid" VmHWM)" "$cpu" "$served" \
    "$(awk -v c="$cpu" -v s="$served" 'BEGIN { if (s > 0) printf "%.1f", c * 1000 / s; else print "-" }')"
done
