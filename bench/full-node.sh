#!/usr/bin/env bash
# Full-node benchmark: N containers (default 500) on one node, each reading its /proc/meminfo,
# /proc/stat and /proc/loadavg once a second, served by isolfs (--attach) and, in a second phase
# of the same run, by LXCFS (binds at creation). Measures what an operator of a full node cares
# about, against the goals of our issue:
#
#   attach   time from starting isolfs until every container reads isolfs's content (goal ≤ 2 s)
#   steady   daemon CPU, % of one CPU, over STEADY_S s of the N readers (goal < 10%)
#   idle     daemon CPU with every reader stopped (SIGSTOP), over IDLE_S s (goal < 0.5%)
#   memory   daemon RSS (and peak) at the end of the steady window
#   latency  p50/p99/max of every open+read+close the readers made in the steady window
#            (goal p99 < 1 ms, no read over 10 ms)
#   repair   after `kill -9` of isolfs, time from starting a new one on the same mountpoint
#            until every container reads isolfs's content again (goal ≤ 2 s)
#
# LXCFS has neither attach (its files are bound into a container when it is created) nor repair
# (a killed LXCFS leaves ENOTCONN in every container until it restarts): those rows say so.
#
# A "container" here has no runtime: a cgroup per v1 controller beneath the cgroup this shell is
# in, all N under one common parent per phase (isolfs's --attach prefix), with a memory limit of
# 256 MiB so that served content is recognisable (MemTotal 262144 kB), and in it
# `unshare -m -p -f --propagation private --mount-proc --kill-child fullnode-reader init ...`:
# a fresh mount and pid namespace with its own /proc, an init that sleeps, and a reader
# (bench/fullnode-reader.c) that records every read's latency and reports, from inside, when its
# /proc/meminfo starts or stops showing served content. The readers' first rounds are spread at
# random over the 1 s interval.
#
# The phases run one after the other (isolfs, then LXCFS), each with its own N containers and
# only its own daemon running, so that neither daemon's CPU or latency includes the other's. What
# else the machine did shows in the table ("everything else": the machine's busy CPU less the
# daemon's and the containers'); a CPU timeline every 100 ms (fullnode-reader monitor) gives the
# latency over the quiet seconds only and names the worst second, so that a stall of the daemon
# can be told from a noisy neighbour. isolfs runs as deployed (deploy/daemonset.yaml: --http on,
# scraped once at each end of the steady window) with --log-level debug (one line per attach
# scan, with its duration).
#
#   bench/full-node.sh                  # N=500, both phases, ~2.5 minutes on 2 CPUs
#   N=20 STEADY_S=10 IDLE_S=5 bench/full-node.sh
#   PHASES=isolfs N=100 bench/full-node.sh
#
# Environment: N (default 500), PHASES ("isolfs lxcfs"), STEADY_S (30), IDLE_S (20), SETTLE_S
# (5: after every container reads served content, before the steady window), ATTACH_INTERVAL_MS
# (30000, isolfs's --attach-interval-ms: the full scan, its default), PROBE_MS (100: how often a reader that does not yet see
# served content looks again), WAIT_TIMEOUT_S (120: how long attach or repair may take before
# the run gives up on it), QUIET_OTHER_PCT (25: a second is quiet when everything else used less
# than this % of one CPU), ISOLFS_ARGS (extra arguments for isolfs), RESULTS_OUT=DIR (keep the raw
# samples, events, timelines, scrapes and daemon logs there), PERF=1 (perf record -g of each daemon
# over the steady window; isolfs with --perf-basic-prof, so JS functions have names: top symbols,
# inclusive JS time and shared objects land in RESULTS_OUT/<phase>/perf-*).
#
# Everything is undone on exit, failure or Ctrl-C (lib.sh's trap plus fullnode_cleanup): every
# process in our container cgroups is killed by pid, daemons are stopped by pid, mounts unmounted,
# cgroups removed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

N=${N:-500}
PHASES=${PHASES:-"isolfs lxcfs"}
STEADY_S=${STEADY_S:-30}
IDLE_S=${IDLE_S:-20}
SETTLE_S=${SETTLE_S:-5}
ATTACH_INTERVAL_MS=${ATTACH_INTERVAL_MS:-30000}
PROBE_MS=${PROBE_MS:-100}
WAIT_TIMEOUT_S=${WAIT_TIMEOUT_S:-120}
QUIET_OTHER_PCT=${QUIET_OTHER_PCT:-25}
READ_INTERVAL_MS=1000
MEMORY_LIMIT_BYTES=$((256 * 1024 * 1024))
LIMIT_KB=$((MEMORY_LIMIT_BYTES / 1024))
# Goals from the issue (at 500 containers).
GOAL_ATTACH_S=2
GOAL_REPAIR_S=2
GOAL_STEADY_PCT=10
GOAL_IDLE_PCT=0.5
GOAL_P99_US=1000
GOAL_MAX_US=10000

[[ $N =~ ^[0-9]+$ && $N -ge 1 ]] || die "N must be a positive integer"
for phase in $PHASES; do [[ $phase == isolfs || $phase == lxcfs ]] || die "PHASES: unknown phase $phase (isolfs, lxcfs)"; done

CLK_TCK=$(getconf CLK_TCK)

# --- small helpers ----------------------------------------------------------------------------

now_ns() { printf -v "$1" '%s000' "${EPOCHREALTIME/[.,]/}"; }           # CLOCK_REALTIME in ns
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }  # secs FROM_NS TO_NS

# proc_ticks PID: "<utime+stime> <cutime+cstime>" clock ticks (all threads; reaped children).
proc_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13, $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo "0 0"; }
pct() { awk -v t="$1" -v s="$2" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz / s * 100 }'; }  # pct TICKS SECONDS

# thread_ticks PID: one line per thread, "<tid> <role> <utime+stime>"; role: main (the event
# loop), fuse (the thread blocked reading /dev/fuse: the native request loop) or other (V8,
# libuv's pool, the watchdog...). Node names every thread "node", so the role comes from wchan.
thread_ticks() {
  local task tid role wchan
  for task in /proc/"$1"/task/*; do
    tid=${task##*/}
    wchan=""
    read -r wchan < "$task/wchan" 2>/dev/null || true # no trailing newline: read "fails" but sets it
    if [[ $tid == "$1" ]]; then role=main; elif [[ $wchan == fuse_dev* ]]; then role=fuse; else role=other; fi
    awk -v tid="$tid" -v role="$role" '{ sub(/^.*\) /, ""); print tid, role, $12 + $13 }' "$task/stat" 2>/dev/null || true
  done
}

# host_ticks: busy clock ticks of the whole machine (all CPUs: /proc/stat minus idle and iowait).
host_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

# nap SECONDS: sleep that a TERM/INT ends at once (bash runs a trap only after a foreground
# command returns, and `wait` returns as soon as a trapped signal arrives).
NAP_PID=""
nap() {
  sleep "$1" &
  NAP_PID=$!
  wait "$NAP_PID" || true
  NAP_PID=""
}

# containers_ns: CPU ns of every container of this phase (cpuacct.usage of their parent).
containers_ns() { cat "${PARENT_DIR[cpuacct]:-/nonexistent}/cpuacct.usage" 2>/dev/null || echo 0; }

# start_monitor PID NAME: fullnode-reader monitor (a CPU timeline every 100 ms) into
# $PHASE_DIR/timeline-NAME until PID exits; MONITOR_PID is it.
start_monitor() {
  "$READER" monitor "$1" "${PARENT_DIR[cpuacct]:-/nonexistent}/cpuacct.usage" 100 "$PHASE_DIR/timeline-$2" &
  MONITOR_PID=$!
  BENCH_PIDS+=("$MONITOR_PID")
}
stop_monitor() {
  [[ -n ${MONITOR_PID:-} ]] || return 0
  stop_pid "$MONITOR_PID"
  forget_pid "$MONITOR_PID"
  MONITOR_PID=""
}

# scans_in T0_NS T1_NS LOG: isolfs's attach scans (logged at debug) within a window:
# "<scans> scans, <mean> ms mean, <max> ms max, <inspected> namespaces looked at per scan".
scans_in() {
  node -e '
    const [t0, t1, file] = process.argv.slice(1);
    const scans = require("fs").readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => { try { return JSON.parse(l); } catch { return null; } })
      .filter((j) => j && j.msg === "attach scan" && Date.parse(j.time) * 1e6 >= Number(t0) && Date.parse(j.time) * 1e6 < Number(t1));
    const d = scans.map((j) => j.durationMs);
    const mean = (a) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : 0);
    console.log(`${scans.length} scans, ${mean(d).toFixed(0)} ms mean, ${Math.max(0, ...d).toFixed(0)} ms max, ${mean(scans.map((j) => j.inspected)).toFixed(0)} namespaces looked at per scan`);
  ' "$1" "$2" "$3" 2>/dev/null || echo "?"
}

# worst_second PHASE: the second of the steady window with the slowest median read, and who
# used the CPU in it (from the monitor's timeline), to tell a daemon stall from a noisy neighbour.
worst_second() {
  local line start timeline
  line=$(grep '^worst_second=' "$PHASE_DIR/latency") || return 0
  start=${line#worst_second=}
  start=${start%% *}
  timeline=$(ls "$PHASE_DIR"/timeline-* 2>/dev/null | head -n 1)
  [[ -n $timeline ]] || timeline=/dev/null
  awk -v s="$start" -v t0="${RESULT[$1:steady.t0]}" -v hz="$CLK_TCK" -v line="$line" '
    $1 >= s - 1e8 && $1 <= s + 1.1e9 { if (!n++) { a = $0 } b = $0 }
    END {
      split(line, kv, /[ =]/)
      printf "+%.0f s into the window: %d reads, p50 %.1f ms, max %.1f ms", (s - t0) / 1e9, kv[4], kv[6] / 1e3, kv[8] / 1e3
      if (n >= 2) { split(a, x, " "); split(b, y, " "); dt = (y[1] - x[1]) / 1e9
        m = (y[2] - x[2]) / hz / dt * 100; d = (y[3] - x[3]) / hz / dt * 100; c = (y[4] - x[4]) / 1e9 / dt * 100
        printf "; that second: daemon %.0f%%, containers %.0f%%, everything else %.0f%% (of one CPU)", d, c, (m - d - c > 0 ? m - d - c : 0) }
    }' "$timeline"
}

forget_pid() { # drop a pid we reaped from BENCH_PIDS, so the trap never signals a reused pid
  local pid=$1 kept=() p
  for p in "${BENCH_PIDS[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
  BENCH_PIDS=("${kept[@]}")
}

# --- limits ------------------------------------------------------------------------------------

# Everything that could stop us from creating N containers, checked before creating any.
check_limits() {
  local problems=() tasks free_pids nofile v own dir chain_max
  (( N <= 9999 )) || problems+=("N=$N: the script numbers containers c1..c9999")
  is_pure_v2 && problems+=("pure cgroup v2 host: this benchmark builds v1 cgroups (hybrid hosts only)")
  tasks=$(ls -d /proc/[0-9]*/task/[0-9]* 2>/dev/null | wc -l)
  # Per container: unshare, its init, the reader; the attach helper and LXCFS's forks come and go.
  v=$(cat /proc/sys/kernel/pid_max)
  free_pids=$((v - tasks))
  (( free_pids > 3 * N + 500 )) || problems+=("kernel.pid_max=$v with $tasks tasks running: $free_pids pids free, need $((3 * N + 500))")
  v=$(cat /proc/sys/kernel/threads-max)
  (( v - tasks > 3 * N + 500 )) || problems+=("kernel.threads-max=$v with $tasks tasks: need $((3 * N + 500)) more")
  v=$(ulimit -u)
  [[ $v == unlimited || $(id -u) == 0 ]] || (( v > 3 * N + 500 )) || problems+=("ulimit -u is $v: need $((3 * N + 500)) processes")
  for v in pid mnt; do
    dir=/proc/sys/user/max_${v}_namespaces
    [[ -r $dir ]] && (( $(cat "$dir") > N + 100 )) || problems+=("$dir=$(cat "$dir" 2>/dev/null): need more than $((N + 100))")
  done
  # A daemon holds at most one open file per reader in flight (3 per container at worst).
  nofile=$(ulimit -n)
  [[ $nofile == unlimited ]] || (( nofile > 3 * N + 200 )) || problems+=("ulimit -n is $nofile: a daemon may need $((3 * N + 200)) open files")
  # A pids controller above us (v1) with a limit.
  own=$(own_cgroup_of pids)
  if [[ -n $own ]]; then
    dir="$CGROUP_ROOT/pids${own%/}"
    while [[ $dir == "$CGROUP_ROOT/pids"* ]]; do
      if [[ -r $dir/pids.max ]]; then
        chain_max=$(cat "$dir/pids.max")
        [[ $chain_max == max ]] || (( chain_max - $(cat "$dir/pids.current") > 3 * N + 200 )) ||
          problems+=("$dir/pids.max=$chain_max (current $(cat "$dir/pids.current")): need $((3 * N + 200)) more tasks")
      fi
      [[ $dir == "$CGROUP_ROOT/pids" ]] && break
      dir=$(dirname "$dir")
    done
  fi
  # Memory: ~1.5 MiB per container (measured: unshare + init + reader), charged to our memory cgroup.
  own=$(own_cgroup_of memory)
  dir="$CGROUP_ROOT/memory${own%/}"
  if [[ -r $dir/memory.limit_in_bytes ]]; then
    v=$(( $(cat "$dir/memory.limit_in_bytes") - $(cat "$dir/memory.usage_in_bytes") ))
    (( v > N * 3 * 1024 * 1024 + 512 * 1024 * 1024 )) || problems+=("memory cgroup $own has $((v / 1048576)) MiB left: need ~$((N * 3 + 512)) MiB")
  fi
  v=$(awk '$1 == "MemAvailable:" { print int($2 / 1024) }' /proc/meminfo)
  (( v > N * 3 + 512 )) || problems+=("MemAvailable ${v} MiB: need ~$((N * 3 + 512)) MiB")
  if (( ${#problems[@]} > 0 )); then
    log "cannot create N=$N containers on this machine:"
    printf '  - %s\n' "${problems[@]}" >&2
    exit 1
  fi
  log "limits: pid_max $(cat /proc/sys/kernel/pid_max) ($free_pids free), ulimit -n $nofile, max_mnt_namespaces $(cat /proc/sys/user/max_mnt_namespaces), max_pid_namespaces $(cat /proc/sys/user/max_pid_namespaces), MemAvailable ${v} MiB: N=$N fits"
}

# --- containers --------------------------------------------------------------------------------

declare -A PARENT_DIR=()   # controller -> this phase's parent cgroup directory
CONTROLLERS=()             # controllers we created cgroups in
PHASE_CG_DIRS=()           # every cgroup directory of this phase, parents first
CONTAINERS_UP=0            # containers whose cgroups exist (their processes may or may not)
ISOLFS_PIDS=()             # every isolfs we started (PERF=1: their /tmp/perf-<pid>.map go at exit)

# create_cgroups PHASE: a parent beneath our own cgroup in every v1 controller, N children in it.
create_cgroups() {
  local phase=$1 controller own base names=() i
  PARENT_LEAF="isolfs-bench-fullnode-$phase-$$"
  PARENT_DIR=()
  CONTROLLERS=()
  PHASE_CG_DIRS=()
  for controller in "${V1_CONTROLLERS[@]}"; do
    [[ -d $CGROUP_ROOT/$controller ]] || continue
    own=$(own_cgroup_of "$controller")
    [[ -n $own ]] || continue
    base="$CGROUP_ROOT/$controller${own%/}/$PARENT_LEAF"
    mkdir "$base" || die "cannot create $base"
    BENCH_CGROUP_DIRS+=("$base")
    PHASE_CG_DIRS+=("$base")
    PARENT_DIR[$controller]=$base
    CONTROLLERS+=("$controller")
    if [[ $controller == cpuset ]]; then
      cat "$(dirname "$base")/cpuset.cpus" > "$base/cpuset.cpus" || die "cannot set $base/cpuset.cpus"
      cat "$(dirname "$base")/cpuset.mems" > "$base/cpuset.mems" || die "cannot set $base/cpuset.mems"
    fi
  done
  [[ -n ${PARENT_DIR[memory]:-} ]] || die "no v1 memory controller: cannot give containers a memory limit"
  for controller in "${CONTROLLERS[@]}"; do
    base=${PARENT_DIR[$controller]}
    names=()
    for ((i = 1; i <= N; i++)); do names+=("$base/c$i"); done
    # Register before creating: a partial mkdir is still undone by the trap (missing dirs are skipped).
    BENCH_CGROUP_DIRS+=("${names[@]}")
    PHASE_CG_DIRS+=("${names[@]}")
    mkdir "${names[@]}" || die "cannot create $N cgroups in $base"
    case $controller in
      cpuset)
        local cpus mems
        cpus=$(cat "$base/cpuset.cpus")
        mems=$(cat "$base/cpuset.mems")
        for ((i = 1; i <= N; i++)); do
          echo "$cpus" > "$base/c$i/cpuset.cpus" && echo "$mems" > "$base/c$i/cpuset.mems" || die "cannot set cpuset of $base/c$i"
        done ;;
      memory)
        for ((i = 1; i <= N; i++)); do echo "$MEMORY_LIMIT_BYTES" > "$base/c$i/memory.limit_in_bytes" || die "cannot limit $base/c$i"; done ;;
    esac
  done
  CONTAINERS_UP=1
}

# start_containers [--bind SRC:DST ...]: container i runs in cgroup c$i. Not registered in
# BENCH_PIDS: every process of a container is in our container cgroups, and kill_containers
# (also run by the trap) kills whatever is in them, by pid.
start_containers() {
  local i controller
  for ((i = 1; i <= N; i++)); do
    (
      for controller in "${CONTROLLERS[@]}"; do echo "$BASHPID" > "${PARENT_DIR[$controller]}/c$i/cgroup.procs" || exit 125; done
      exec unshare -m -p -f --propagation private --mount-proc --kill-child \
        "$READER" init --id "$i" --dir "$SAMPLES" --events "$EVENTS" --limit-kb "$LIMIT_KB" \
        --interval-ms "$READ_INTERVAL_MS" --probe-ms "$PROBE_MS" "$@"
    ) < /dev/null > /dev/null 2>> "$PHASE_DIR/containers.log" &
    disown $!
  done
}

container_pids() { # every process in this phase's container cgroups (memory hierarchy)
  local base=${PARENT_DIR[memory]:-}
  [[ -n $base && -d $base ]] || return 0
  cat "$base"/c*/cgroup.procs 2>/dev/null || true
}

# READER_PIDS: the reader processes (comm fn-reader) of this phase's containers.
find_reader_pids() {
  local pid comm
  READER_PIDS=()
  for pid in $(container_pids); do
    read -r comm < "/proc/$pid/comm" 2>/dev/null || continue
    [[ $comm == fn-reader ]] && READER_PIDS+=("$pid")
  done
  return 0
}

kill_containers() {
  local pids i
  for ((i = 0; i < 100; i++)); do
    pids=$(container_pids)
    [[ -n $pids ]] || return 0
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.1
  done
  log "warning: processes still in the container cgroups after 10 s: $(container_pids | tr '\n' ' ')"
}

remove_phase_cgroups() {
  local i dir kept=() d
  declare -A removed=()
  local controller
  # One rmdir per controller for the N children (3000 rmdir processes would take seconds), then
  # the one-by-one loop below retries whatever was still busy and removes the parents.
  for controller in "${CONTROLLERS[@]}"; do
    rmdir "${PARENT_DIR[$controller]}"/c* 2>/dev/null || true
  done
  for ((i = ${#PHASE_CG_DIRS[@]} - 1; i >= 0; i--)); do
    dir=${PHASE_CG_DIRS[i]}
    [[ -d $dir ]] || { removed[$dir]=1; continue; }
    for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$dir" 2>/dev/null && break; sleep 0.1; done
    if [[ -d $dir ]]; then log "warning: cannot remove cgroup $dir"; else removed[$dir]=1; fi
  done
  for d in "${BENCH_CGROUP_DIRS[@]}"; do [[ -n ${removed[$d]:-} ]] || kept+=("$d"); done
  BENCH_CGROUP_DIRS=("${kept[@]}")
  PHASE_CG_DIRS=()
  CONTAINERS_UP=0
}

# The trap: containers first (all at once: 3N processes one by one would take minutes), then
# lib.sh's cleanup (daemons by pid, mounts, cgroups, temp dir).
fullnode_cleanup() {
  local status=$?
  set +e
  [[ -n $NAP_PID ]] && kill "$NAP_PID" 2>/dev/null
  (( CONTAINERS_UP )) && kill_containers
  if [[ ${PERF:-0} == 1 ]]; then for pid in "${ISOLFS_PIDS[@]}"; do rm -f "/tmp/perf-$pid.map"; done; fi
  (exit "$status")
  bench_cleanup
}

# --- events ------------------------------------------------------------------------------------

# reached SINCE_NS STATE: "<readers whose first STATE event at or after SINCE_NS exists> <latest
# such first time, ns>" (0 when none).
reached() {
  awk -v since="$1" -v st="$2" '$1 >= since && $3 == st && !($2 in t) { t[$2] = $1; n++; if ($1 > max) max = $1 }
    END { printf "%d %s\n", n, (n ? max : 0) }' "$EVENTS"
}

# wait_reached SINCE_NS STATE TIMEOUT_S WHAT: until all N readers reached STATE; sets REACHED_N
# and REACHED_AT (ns); returns 1 on timeout. Logs progress every 2 s.
wait_reached() {
  local since=$1 st=$2 timeout=$3 what=$4 start now last_log=0 n at
  now_ns start
  while :; do
    read -r n at <<< "$(reached "$since" "$st")"
    REACHED_N=$n
    REACHED_AT=$at
    (( n >= N )) && return 0
    now_ns now
    (( now - start > timeout * 1000000000 )) && return 1
    if (( now - last_log > 2000000000 )); then
      log "  $what: $n/$N after $(secs "$(( since > 0 ? since : start ))" "$now") s"
      last_log=$now
    fi
    sleep 0.1
  done
}

# Readers that never reached a state: what their last event was.
describe_missing() {
  local since=$1 st=$2
  awk -v since="$since" -v st="$2" -v n="$N" '
    { last[$2] = $3 " (errno " $4 ")" }
    $1 >= since && $3 == st { ok[$2] = 1 }
    END { for (i = 1; i <= n; i++) if (!(i in ok)) { missing++; if (shown++ < 10) printf "  c%d: last event %s\n", i, (i in last ? last[i] : "none: never reported") }
          if (missing > 10) printf "  ... and %d more\n", missing - 10 }' "$EVENTS" >&2
}

# --- measurements ------------------------------------------------------------------------------

declare -A RESULT=()   # "phase:key" -> value

# measure_window PHASE PID SECONDS KEY: daemon CPU over SECONDS (own threads, reaped children).
measure_window() {
  local phase=$1 pid=$2 seconds=$3 key=$4 self0 child0 self1 child1 t0 t1
  read -r self0 child0 <<< "$(proc_ticks "$pid")"
  host_ticks > "$PHASE_DIR/host-$key-start"
  containers_ns > "$PHASE_DIR/containers-$key-start"
  now_ns t0
  [[ $phase == isolfs ]] && thread_ticks "$pid" > "$PHASE_DIR/threads-$key-start"
  nap "$seconds"
  read -r self1 child1 <<< "$(proc_ticks "$pid")"
  host_ticks > "$PHASE_DIR/host-$key-end"
  containers_ns > "$PHASE_DIR/containers-$key-end"
  now_ns t1
  [[ $phase == isolfs ]] && thread_ticks "$pid" > "$PHASE_DIR/threads-$key-end"
  pid_alive "$pid" || die "$phase daemon (pid $pid) died during the $key window"
  local elapsed
  elapsed=$(secs "$t0" "$t1")
  RESULT[$phase:$key.cpu]=$(pct $((self1 - self0)) "$elapsed")
  RESULT[$phase:$key.cpu_children]=$(pct $((child1 - child0)) "$elapsed")
  # The whole machine's busy CPU over the window (every CPU, % of one CPU), to read the rest
  # against: another benchmark on the machine shows up here.
  RESULT[$phase:$key.host]=$(awk -v hz="$CLK_TCK" -v s="$elapsed" 'FNR == NR { a = $1; next } { printf "%.0f", ($1 - a) / hz / s * 100 }' \
    "$PHASE_DIR/host-$key-start" "$PHASE_DIR/host-$key-end")
  # The containers' CPU (readers, inits, and the kernel's side of their reads) from cpuacct.
  RESULT[$phase:$key.containers]=$(awk -v s="$elapsed" 'FNR == NR { a = $1; next } { printf "%.1f", ($1 - a) / 1e9 / s * 100 }' \
    "$PHASE_DIR/containers-$key-start" "$PHASE_DIR/containers-$key-end")
  RESULT[$phase:$key.rest]=$(awk -v m="${RESULT[$phase:$key.host]}" -v d="${RESULT[$phase:$key.cpu]}" -v c="${RESULT[$phase:$key.cpu_children]}" \
    -v r="${RESULT[$phase:$key.containers]}" 'BEGIN { v = m - d - c - r; printf "%.0f", v < 0 ? 0 : v }')
  RESULT[$phase:$key.t0]=$t0
  RESULT[$phase:$key.t1]=$t1
}

# Per-thread CPU of isolfs over a window, by role (see thread_ticks).
thread_breakdown() {
  local key=$1 seconds=$2
  awk -v hz="$CLK_TCK" -v s="$seconds" '
    FNR == NR { a[$1] = $3; r[$1] = $2; next }
    { role = ($1 in r && r[$1] != "other") ? r[$1] : $2; sum[role] += $3 - ($1 in a ? a[$1] : 0) }
    END { for (k in sum) printf "%s %.2f%%\n", k, sum[k] / hz / s * 100 }' \
    "$PHASE_DIR/threads-$key-start" "$PHASE_DIR/threads-$key-end" | sort | tr '\n' ' '
}

# scrape FILE: isolfs's /metrics (Prometheus text) into FILE, when the endpoint is on.
scrape() {
  [[ -n ${METRICS_URL:-} ]] || return 0
  curl -s --max-time 5 "$METRICS_URL" > "$1" 2>/dev/null || : > "$1"
}
# msum NAME FILE: the sum of every sample of metric NAME (all label sets) in a scrape.
msum() { awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%.9f\n", s }' "$2" 2>/dev/null; }
# metrics_window START END: what isolfs itself says about a window between two scrapes.
metrics_window() {
  local a=$1 b=$2
  [[ -s $a && -s $b ]] || return 0
  awk -v ra="$(msum isolfs_requests_total "$a")" -v rb="$(msum isolfs_requests_total "$b")" \
      -v da="$(msum isolfs_request_duration_seconds_sum "$a")" -v db="$(msum isolfs_request_duration_seconds_sum "$b")" \
      -v ta="$(msum isolfs_loadavg_sampler_duration_seconds_sum "$a")" -v tb="$(msum isolfs_loadavg_sampler_duration_seconds_sum "$b")" \
      -v ca="$(msum isolfs_loadavg_sampler_duration_seconds_count "$a")" -v cb="$(msum isolfs_loadavg_sampler_duration_seconds_count "$b")" \
      -v ga="$(msum nodejs_gc_duration_seconds_sum "$a")" -v gb="$(msum nodejs_gc_duration_seconds_sum "$b")" \
      -v lag="$(msum nodejs_eventloop_lag_max_seconds "$b")" -v lag99="$(msum nodejs_eventloop_lag_p99_seconds "$b")" \
      -v secs="$STEADY_S" 'BEGIN {
        n = rb - ra; printf "opens rendered %d (%.0f/s), %.0f µs of rendering each; ", n, n / secs, (n > 0 ? (db - da) / n * 1e6 : 0)
        t = cb - ca; printf "loadavg sampler %d ticks, %.1f ms each; ", t, (t > 0 ? (tb - ta) / t * 1e3 : 0)
        printf "GC %.1f ms/s; event loop lag p99 %.1f ms, max %.1f ms", (gb - ga) / secs * 1e3, lag99 * 1e3, lag * 1e3 }'
}

stop_readers() { # SIGSTOP / SIGCONT every reader of this phase (processes we started)
  # shellcheck disable=SC2086
  (( ${#READER_PIDS[@]} == 0 )) || kill "-$1" "${READER_PIDS[@]}" 2>/dev/null || true
}

# steady_and_idle PHASE PID: settle, the steady window, latencies, RSS, then the idle window.
steady_and_idle() {
  local phase=$1 pid=$2 reads0 reads1
  log "  settling ${SETTLE_S} s"
  nap "$SETTLE_S"
  log "  steady window: ${STEADY_S} s"
  [[ $phase == isolfs ]] && scrape "$PHASE_DIR/metrics-steady-start"
  if [[ ${PERF:-0} == 1 ]]; then
    perf record -F 499 -g -p "$pid" -o "$PHASE_DIR/perf.data" -- sleep "$STEADY_S" > "$PHASE_DIR/perf.log" 2>&1 &
    PERF_PID=$!
    BENCH_PIDS+=("$PERF_PID")
  fi
  measure_window "$phase" "$pid" "$STEADY_S" steady
  if [[ ${PERF:-0} == 1 ]]; then
    wait "$PERF_PID" || true
    forget_pid "$PERF_PID"
    perf report -i "$PHASE_DIR/perf.data" --stdio --no-children -g none --sort dso,sym 2>/dev/null | grep -E '^ +[0-9]' | head -n 40 > "$PHASE_DIR/perf-top" || true
    # Inclusive time of the JS functions (V8's JIT frames keep frame pointers, so -g sees them).
    perf report -i "$PHASE_DIR/perf.data" --stdio --children -g none --sort sym 2>/dev/null | grep -E '^ +[0-9]' | grep -E 'JS:|Builtins_|uv_|fuse_' | head -n 60 > "$PHASE_DIR/perf-children" || true
    perf report -i "$PHASE_DIR/perf.data" --stdio --no-children -g none --sort dso 2>/dev/null | grep -E '^ +[0-9]' | head -n 15 > "$PHASE_DIR/perf-dso" || true
  fi
  [[ $phase == isolfs ]] && scrape "$PHASE_DIR/metrics-steady-end"
  [[ $phase == isolfs ]] && RESULT[$phase:steady.metrics]=$(metrics_window "$PHASE_DIR/metrics-steady-start" "$PHASE_DIR/metrics-steady-end")
  RESULT[$phase:rss_kb]=$(status_kb "$pid" VmRSS)
  RESULT[$phase:hwm_kb]=$(status_kb "$pid" VmHWM)
  [[ $phase == isolfs ]] && RESULT[$phase:steady.threads]=$(thread_breakdown steady "$STEADY_S")
  find_reader_pids
  RESULT[$phase:readers]=${#READER_PIDS[@]}
  log "  idle window: ${IDLE_S} s with ${#READER_PIDS[@]} readers stopped (SIGSTOP)"
  stop_readers STOP
  nap 1 # reads in flight finish; the daemon's own timers keep running
  measure_window "$phase" "$pid" "$IDLE_S" idle
  if [[ $phase == isolfs ]]; then
    RESULT[$phase:idle.threads]=$(thread_breakdown idle "$IDLE_S")
    RESULT[$phase:steady.scans]=$(scans_in "${RESULT[$phase:steady.t0]}" "${RESULT[$phase:steady.t1]}" "$BENCH_TMP/fullnode-isolfs.log")
    RESULT[$phase:idle.scans]=$(scans_in "${RESULT[$phase:idle.t0]}" "${RESULT[$phase:idle.t1]}" "$BENCH_TMP/fullnode-isolfs.log")
  fi
  stop_readers CONT
  # The steady window's latencies (the readers flushed them long ago).
  local timeline
  timeline=$(ls "$PHASE_DIR"/timeline-* 2>/dev/null | head -n 1)
  "$READER" aggregate "${RESULT[$phase:steady.t0]}" "${RESULT[$phase:steady.t1]}" "$SAMPLES" \
    ${timeline:+"$timeline" "$CLK_TCK" "$QUIET_OTHER_PCT"} > "$PHASE_DIR/latency"
  RESULT[$phase:latency]=$(cat "$PHASE_DIR/latency")
  RESULT[$phase:worst]=$(worst_second "$phase")
}

setup_phase() {
  local phase=$1
  PHASE_DIR="$BENCH_TMP/$phase"
  SAMPLES="$PHASE_DIR/samples"
  EVENTS="$PHASE_DIR/events"
  mkdir -p "$SAMPLES"
  : > "$EVENTS"
  : > "$PHASE_DIR/containers.log"
}

# Containers up and every reader reporting STATE; dies with the reason otherwise.
containers_up() {
  local st=$1 what=$2 t0 t1
  log "  creating $N cgroups per controller (${#V1_CONTROLLERS[@]} controllers) and $N containers"
  now_ns t0
  create_cgroups "$PHASE"
  shift 2
  start_containers "$@"
  if ! wait_reached 0 "$st" 60 "$what"; then
    log "only $REACHED_N of $N containers report $st after 60 s"
    describe_missing 0 "$st"
    [[ -s $PHASE_DIR/containers.log ]] && { log "containers' stderr:"; sort "$PHASE_DIR/containers.log" | uniq -c | head -n 10 >&2; }
    die "cannot run $N containers (see above)"
  fi
  now_ns t1
  RESULT[$PHASE:create_s]=$(secs "$t0" "$t1")
  log "  $N containers up in ${RESULT[$PHASE:create_s]} s, all reading ($st)"
}

teardown_phase() {
  local pid=$1
  stop_monitor
  kill_containers
  if pid_alive "$pid"; then stop_pid "$pid"; forget_pid "$pid"; fi
  unmount_dir "$DAEMON_MNT"
  remove_phase_cgroups
  if [[ -n ${RESULTS_OUT:-} ]]; then mkdir -p "$RESULTS_OUT" && cp -r "$PHASE_DIR" "$RESULTS_OUT/" && cp "$BENCH_TMP"/*.log "$RESULTS_OUT/" 2>/dev/null; fi
  rm -rf "$SAMPLES"
}

# restart_isolfs NAME ARGS...: start_isolfs on the mountpoint a killed isolfs left dead (lib.sh's
# start_isolfs cannot: its mkdir -p fails with ENOTCONN there). The daemon itself detaches the dead
# mount at start, as it must in production, so that path is part of what repair measures.
restart_isolfs() {
  local name=$1
  shift
  DAEMON_MNT="$BENCH_TMP/$name"
  node ${ISOLFS_NODE_FLAGS---max-semi-space-size=4} "$PROJECT_ROOT/dist/cli.js" "$DAEMON_MNT" --state-dir "$BENCH_TMP/$name.state" --log-level warn "$@" \
    > "$BENCH_TMP/$name.log" 2>&1 &
  DAEMON_PID=$!
  BENCH_PIDS+=("$DAEMON_PID")
  wait_for_file "$DAEMON_PID" "$DAEMON_MNT/proc/meminfo" || { cat "$BENCH_TMP/$name.log" >&2; die "isolfs ($name) did not start again"; }
}

# --- phases ------------------------------------------------------------------------------------

phase_isolfs() {
  PHASE=isolfs
  setup_phase isolfs
  log "isolfs: $N containers, then the daemon with --attach"
  containers_up host "reading the kernel's files"
  local prefix="$(own_cgroup_of memory)"
  prefix="${prefix%/}/$PARENT_LEAF/"
  local port=$((20000 + $$ % 20000)) t_start t_ready t_kill t_restart args
  METRICS_URL="http://127.0.0.1:$port/metrics"
  args=(--attach "$prefix" --attach-interval-ms "$ATTACH_INTERVAL_MS" --log-level debug --http "127.0.0.1:$port")
  # shellcheck disable=SC2206
  args+=(${ISOLFS_ARGS:-})
  RESULT[isolfs:args]="--attach $prefix --attach-interval-ms $ATTACH_INTERVAL_MS ${ISOLFS_ARGS:-}"

  # Attach: from the moment we start the daemon until the last reader sees served content.
  now_ns t_start
  start_isolfs fullnode-isolfs "${args[@]}"
  now_ns t_ready
  local pid=$DAEMON_PID
  ISOLFS_PIDS+=("$pid")
  start_monitor "$pid" attach
  RESULT[isolfs:mount_s]=$(secs "$t_start" "$t_ready")
  log "  isolfs (pid $pid) serving its mount after ${RESULT[isolfs:mount_s]} s; waiting for every container"
  if wait_reached "$t_start" iso "$WAIT_TIMEOUT_S" "attached"; then
    RESULT[isolfs:attach_s]=$(secs "$t_start" "$REACHED_AT")
    log "  all $N containers read isolfs's content ${RESULT[isolfs:attach_s]} s after the start"
  else
    RESULT[isolfs:attach_s]="timeout: $REACHED_N/$N after ${WAIT_TIMEOUT_S}"
    log "  attach: only $REACHED_N/$N containers after $WAIT_TIMEOUT_S s"
    describe_missing "$t_start" iso
  fi
  RESULT[isolfs:attach_scans]=$(grep -c '"msg":"attach scan"' "$BENCH_TMP/fullnode-isolfs.log" || true)
  RESULT[isolfs:attach_scan_ms]=$(grep '"msg":"attach scan"' "$BENCH_TMP/fullnode-isolfs.log" | grep -o '"durationMs":[0-9.]*' | cut -d: -f2 | awk '{ printf "%s%.0f", (NR > 1 ? " " : ""), $1 }')

  steady_and_idle isolfs "$pid"

  # Repair: kill -9, every reader sees the dead mount, a new daemon on the same mountpoint.
  nap 2 # the readers are running again
  log "  kill -9 isolfs (pid $pid)"
  now_ns t_kill
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
  stop_monitor
  if ! wait_reached "$t_kill" err 15 "saw the dead mount"; then
    log "  only $REACHED_N/$N readers saw the dead mount within 15 s"
    describe_missing "$t_kill" err
  fi
  RESULT[isolfs:dead_seen]=$REACHED_N
  cp "$BENCH_TMP/fullnode-isolfs.log" "$BENCH_TMP/fullnode-isolfs-first.log"
  now_ns t_restart
  restart_isolfs fullnode-isolfs "${args[@]}"
  pid=$DAEMON_PID
  ISOLFS_PIDS+=("$pid")
  start_monitor "$pid" repair
  now_ns t_ready
  RESULT[isolfs:remount_s]=$(secs "$t_restart" "$t_ready")
  log "  new isolfs (pid $pid) serving after ${RESULT[isolfs:remount_s]} s; waiting for every container"
  if wait_reached "$t_restart" iso "$WAIT_TIMEOUT_S" "repaired"; then
    RESULT[isolfs:repair_s]=$(secs "$t_restart" "$REACHED_AT")
    log "  all $N containers read isolfs's content again ${RESULT[isolfs:repair_s]} s after the restart"
  else
    RESULT[isolfs:repair_s]="timeout: $REACHED_N/$N after ${WAIT_TIMEOUT_S}"
    describe_missing "$t_restart" iso
  fi
  RESULT[isolfs:repair_scans]=$(grep -c '"msg":"attach scan"' "$BENCH_TMP/fullnode-isolfs.log" || true)
  RESULT[isolfs:repair_scan_ms]=$(grep '"msg":"attach scan"' "$BENCH_TMP/fullnode-isolfs.log" | grep -o '"durationMs":[0-9.]*' | cut -d: -f2 | awk '{ printf "%s%.0f", (NR > 1 ? " " : ""), $1 }')
  grep -E '"level":(40|50|60)' "$BENCH_TMP/fullnode-isolfs-first.log" "$BENCH_TMP/fullnode-isolfs.log" | head -n 5 > "$PHASE_DIR/warnings" || true
  teardown_phase "$pid"
  METRICS_URL=""
}

phase_lxcfs() {
  PHASE=lxcfs
  setup_phase lxcfs
  log "lxcfs: the daemon, then $N containers with its files bound at creation"
  start_lxcfs fullnode-lxcfs
  local pid=$DAEMON_PID mnt=$DAEMON_MNT
  containers_up iso "reading LXCFS's files" \
    --bind "$mnt/proc/meminfo:/proc/meminfo" --bind "$mnt/proc/stat:/proc/stat" --bind "$mnt/proc/loadavg:/proc/loadavg"
  start_monitor "$pid" steady
  steady_and_idle lxcfs "$pid"
  teardown_phase "$pid"
}

# --- report ------------------------------------------------------------------------------------

lat() { # lat PHASE FILE KEY
  awk -v f="file=$2" -v k="$3" '$1 == f { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' <<< "${RESULT[$1:latency]:-}"
}
verdict() { # verdict VALUE OP GOAL -> "ok" / "MISSED" / ""
  [[ $1 =~ ^[0-9.]+$ ]] || { [[ $1 == timeout* ]] && echo MISSED; return 0; }
  awk -v v="$1" -v op="$2" -v g="$3" 'BEGIN { ok = (op == "<=") ? v <= g : v < g; print ok ? "ok" : "MISSED" }'
}

report() {
  local rows=() p
  echo
  echo "Full node: $N containers, each reading /proc/meminfo, /proc/stat, /proc/loadavg once a second"
  echo "$(nproc) CPUs, kernel $(uname -r), node $(node --version), lxcfs $(lxcfs --version 2>&1 | head -n 1) (-l --enable-cfs), $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "steady ${STEADY_S} s, idle ${IDLE_S} s (readers SIGSTOPped); CPU = % of one CPU, daemon's own threads (+ its reaped children)"
  [[ -n ${RESULT[isolfs:args]:-} ]] && echo "isolfs ${RESULT[isolfs:args]}"
  echo
  local fmt="%-30s %-24s %-30s %-10s %s\n"
  # shellcheck disable=SC2059
  printf "$fmt" "" isolfs lxcfs goal "isolfs vs goal"
  row() { # row LABEL ISO LXC GOAL VERDICT
    # shellcheck disable=SC2059
    printf "$fmt" "$1" "${2:--}" "${3:--}" "$4" "$5"
  }
  cpu() { [[ -n ${RESULT[$1:$2.cpu]:-} ]] && echo "${RESULT[$1:$2.cpu]}% (+${RESULT[$1:$2.cpu_children]}%)"; }
  local have_iso=${RESULT[isolfs:latency]:+1} have_lxc=${RESULT[lxcfs:latency]:+1}
  row "containers up (s to create)" "${have_iso:+$N (${RESULT[isolfs:create_s]} s)}" "${have_lxc:+$N (${RESULT[lxcfs:create_s]} s)}" "500" ""
  row "attach: all read served (s)" "${RESULT[isolfs:attach_s]:-}" "${have_lxc:+n/a (bound at creation)}" "<= $GOAL_ATTACH_S s" "$(verdict "${RESULT[isolfs:attach_s]:-}" '<=' $GOAL_ATTACH_S)"
  row "  of which mount ready (s)" "${RESULT[isolfs:mount_s]:-}" "" "" ""
  row "steady CPU" "$(cpu isolfs steady)" "$(cpu lxcfs steady)" "< $GOAL_STEADY_PCT%" "$(verdict "${RESULT[isolfs:steady.cpu]:-}" '<' $GOAL_STEADY_PCT)"
  row "idle CPU (readers stopped)" "$(cpu isolfs idle)" "$(cpu lxcfs idle)" "< $GOAL_IDLE_PCT%" "$(verdict "${RESULT[isolfs:idle.cpu]:-}" '<' $GOAL_IDLE_PCT)"
  row "  containers' CPU, steady" "${RESULT[isolfs:steady.containers]:+${RESULT[isolfs:steady.containers]}%}" "${RESULT[lxcfs:steady.containers]:+${RESULT[lxcfs:steady.containers]}%}" "" "(cpuacct: readers + kernel side of reads)"
  row "  everything else, steady" "${RESULT[isolfs:steady.rest]:+${RESULT[isolfs:steady.rest]}%}" "${RESULT[lxcfs:steady.rest]:+${RESULT[lxcfs:steady.rest]}%}" "" "(machine - daemon - containers: noise)"
  row "  everything else, idle" "${RESULT[isolfs:idle.rest]:+${RESULT[isolfs:idle.rest]}%}" "${RESULT[lxcfs:idle.rest]:+${RESULT[lxcfs:idle.rest]}%}" "" ""
  row "  whole machine busy, steady" "${RESULT[isolfs:steady.host]:+${RESULT[isolfs:steady.host]}%}" "${RESULT[lxcfs:steady.host]:+${RESULT[lxcfs:steady.host]}%}" "" "(all $(nproc) CPUs)"
  row "  whole machine busy, idle" "${RESULT[isolfs:idle.host]:+${RESULT[isolfs:idle.host]}%}" "${RESULT[lxcfs:idle.host]:+${RESULT[lxcfs:idle.host]}%}" "" ""
  kb() { [[ -n ${RESULT[$1:rss_kb]:-} ]] && awk -v r="${RESULT[$1:rss_kb]}" -v h="${RESULT[$1:hwm_kb]}" 'BEGIN { printf "%.1f (peak %.1f)", r / 1024, h / 1024 }'; }
  row "RSS MiB" "$(kb isolfs)" "$(kb lxcfs)" "" ""
  row "reads in steady window" "$(lat isolfs all reads)" "$(lat lxcfs all reads)" "" ""
  row "  failed reads" "$(lat isolfs all errors)" "$(lat lxcfs all errors)" "0" "$(verdict "$(lat isolfs all errors)" '<=' 0)"
  row "read p50 us" "$(lat isolfs all p50_us)" "$(lat lxcfs all p50_us)" "" ""
  row "read p99 us" "$(lat isolfs all p99_us)" "$(lat lxcfs all p99_us)" "< $GOAL_P99_US" "$(verdict "$(lat isolfs all p99_us)" '<' $GOAL_P99_US)"
  row "read max us" "$(lat isolfs all max_us)" "$(lat lxcfs all max_us)" "<= $GOAL_MAX_US" "$(verdict "$(lat isolfs all max_us)" '<=' $GOAL_MAX_US)"
  quiet() { # quiet PHASE: "p99 / max (k of n s)" over the quiet seconds
    local k n
    k=$(grep -o 'quiet_seconds=[0-9]*' <<< "${RESULT[$1:latency]:-}" | cut -d= -f2)
    n=$(grep -o 'quiet_seconds=[0-9]* of=[0-9]*' <<< "${RESULT[$1:latency]:-}" | cut -d= -f3)
    [[ -n $k ]] || return 0
    if (( k > 0 )); then echo "$(lat "$1" quiet p99_us) / $(lat "$1" quiet max_us) ($k/$n s)"; else echo "none of $n s quiet"; fi
  }
  row "  p99 / max us, quiet seconds" "$(quiet isolfs)" "$(quiet lxcfs)" "" "(seconds where everything else < ${QUIET_OTHER_PCT}%)"
  row "reads over 10 ms" "$(lat isolfs all over_10ms)" "$(lat lxcfs all over_10ms)" "0" "$(verdict "$(lat isolfs all over_10ms)" '<=' 0)"
  row "repair after kill -9 (s)" "${RESULT[isolfs:repair_s]:-}" "${have_lxc:+n/a (ENOTCONN until restart)}" "<= $GOAL_REPAIR_S s" "$(verdict "${RESULT[isolfs:repair_s]:-}" '<=' $GOAL_REPAIR_S)"
  row "  of which mount ready (s)" "${RESULT[isolfs:remount_s]:-}" "" "" ""
  echo
  echo "latency per file in the steady window (us): p50 / p99 / p99.9 / max, reads over 1 ms"
  for p in isolfs lxcfs; do
    [[ -n ${RESULT[$p:latency]:-} ]] || continue
    for f in meminfo stat loadavg; do
      printf "  %-7s %-8s %8s / %8s / %8s / %8s   %s\n" "$p" "$f" "$(lat $p $f p50_us)" "$(lat $p $f p99_us)" "$(lat $p $f p999_us)" "$(lat $p $f max_us)" "$(lat $p $f over_1ms)"
    done
  done
  echo
  for p in isolfs lxcfs; do [[ -n ${RESULT[$p:worst]:-} ]] && echo "worst second, $p: ${RESULT[$p:worst]}"; done
  if [[ -n ${RESULT[isolfs:steady.threads]:-} ]]; then
    echo
    echo "isolfs CPU by thread, steady: ${RESULT[isolfs:steady.threads]}"
    echo "isolfs /metrics, steady: ${RESULT[isolfs:steady.metrics]:-}"
    echo "isolfs CPU by thread, idle:   ${RESULT[isolfs:idle.threads]:-}"
    echo "isolfs attach scans, steady: ${RESULT[isolfs:steady.scans]:-}"
    echo "isolfs attach scans, idle:   ${RESULT[isolfs:idle.scans]:-}"
    echo "isolfs attach scans until all attached: ${RESULT[isolfs:attach_scans]:-?}, durations ms: $(cut -c1-200 <<< "${RESULT[isolfs:attach_scan_ms]:-}")"
    echo "isolfs scans of the new daemon (repair): ${RESULT[isolfs:repair_scans]:-?}, durations ms: $(cut -c1-200 <<< "${RESULT[isolfs:repair_scan_ms]:-}")"
    echo "readers that saw the dead mount before the restart: ${RESULT[isolfs:dead_seen]:-?}/$N"
  fi
}

# --- main --------------------------------------------------------------------------------------

if [[ ${PERF:-0} == 1 ]]; then
  command -v perf > /dev/null || die "PERF=1 needs perf"
  # JIT frames by name (node writes /tmp/perf-<pid>.map; removed below).
  ISOLFS_NODE_FLAGS=${ISOLFS_NODE_FLAGS---max-semi-space-size=4 --perf-basic-prof}
fi
bench_init
trap fullnode_cleanup EXIT
cd "$BENCH_TMP" # what the daemons write to their working directory (V8 logs with PERF=1) goes with it
check_limits
READER="$BENCH_TMP/fullnode-reader"
gcc -O2 -Wall -Wextra -o "$READER" "$BENCH_DIR/fullnode-reader.c" || die "cannot compile bench/fullnode-reader.c"
if [[ " $PHASES " == *" isolfs "* ]]; then
  isolfs_available || die "isolfs is not built (npm run install && npm run build)"
fi
log "full node: N=$N, phases: $PHASES"
for phase in $PHASES; do "phase_$phase"; done
report
