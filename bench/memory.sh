#!/usr/bin/env bash
# Idle memory of isolfs next to LXCFS (lxcfs -l --enable-cfs), side by side in one run: each
# daemon's RSS split into anonymous memory (its own heap: for isolfs V8's heaps, malloc, stacks)
# and file pages (mapped binaries and libraries: clean, shared with every other process mapping
# the same file, and reclaimable; for isolfs mostly the node executable), plus the RSS of the
# daemon's child processes (none today, for either).
#
# Two moments: IDLE seconds after start (a few reads of each file first, as a node whose pods
# read now and then), and SETTLE seconds after LOAD seconds of reads of each file by 2 readers
# inside a cgroup: what a node that served a burst keeps once V8's memory reducer has shrunk the
# heap, 20-60 s after the load stops (VmHWM shows the peak). isolfs runs twice: "plain" (mount
# only) and "prod" (--http and --attach, the flags of deploy/daemonset.yaml), each with the
# environment of its image (bench/lib.sh image_env: NODE_OPTIONS, MALLOC_ARENA_MAX). With
# BASELINE=DIR, a built checkout of another commit runs beside it, the same two ways.
#
#   bench/memory.sh                                   # ~2.5 minutes
#   BASELINE=/work/wt/membase bench/memory.sh         # before/after in one run
#
# Environment: IDLE (seconds, default 10), SETTLE (seconds, default 60), LOAD (seconds per file
# and daemon, default 3), BASELINE=DIR, ISOLFS_NO_BUILD=1 (use dist/ as it is, skip tsc).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

IDLE=${IDLE:-10}
SETTLE=${SETTLE:-60}
LOAD=${LOAD:-3}
FILES="meminfo stat cpuinfo"
PROD_ARGS=(--http 127.0.0.1:0 --attach /kubepods)

bench_init
build_reader
if [[ ${ISOLFS_NO_BUILD:-0} == 1 ]]; then isolfs_available || die "dist/ or the native addon is missing"; else build_isolfs || die "isolfs does not build"; fi
if [[ -n ${BASELINE:-} ]]; then
  [[ -f $BASELINE/dist/cli.js ]] && ls "$BASELINE"/native/build/Release/*.node > /dev/null 2>&1 || die "BASELINE=$BASELINE is not a built checkout"
fi

TARGETS=(lxcfs)
declare -A PID=() ROOT=() WHAT=()
start_lxcfs lxcfs
PID[lxcfs]=$DAEMON_PID ROOT[lxcfs]=$DAEMON_MNT WHAT[lxcfs]="lxcfs $(lxcfs --version 2>&1 | head -n 1)"

this_tree=$PROJECT_ROOT
trees=("this:$this_tree")
[[ -n ${BASELINE:-} ]] && trees+=("base:$BASELINE")
for entry in "${trees[@]}"; do
  side=${entry%%:*} PROJECT_ROOT=${entry#*:}
  rev=$(git -C "$PROJECT_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
  for shape in plain prod; do
    name="isolfs-$side-$shape"
    # Each prod daemon its own hook socket: two on the default path refuse each other (--attach serves one).
    if [[ $shape == prod ]]; then start_isolfs "$name" "${PROD_ARGS[@]}" --hook-socket "$BENCH_TMP/$name.hook.sock"; else start_isolfs "$name"; fi
    PID[$name]=$DAEMON_PID ROOT[$name]=$DAEMON_MNT WHAT[$name]="$PROJECT_ROOT ($rev), $(image_env "$PROJECT_ROOT")"
    TARGETS+=("$name")
  done
done
PROJECT_ROOT=$this_tree

create_cgroup bench memory=$((256 * 1024 * 1024))

# kB of one /proc/PID/status field; 0 when absent.
kb() { awk -v f="$2:" '$1 == f { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# RSS of the mappings of PID's executable (node for isolfs: the biggest part of its file pages).
exe_kb() {
  local exe
  exe=$(readlink "/proc/$1/exe") || { echo 0; return; }
  awk -v exe="$exe" '/^[0-9a-f]+-[0-9a-f]+ / { mine = ($NF == exe) } mine && $1 == "Rss:" { s += $2 } END { print s + 0 }' "/proc/$1/smaps"
}
# VmRSS and RssAnon summed over PID's child processes.
children_kb() {
  local rss=0 anon=0 child
  for child in $(pgrep -P "$1"); do
    rss=$((rss + $(kb "$child" VmRSS))) anon=$((anon + $(kb "$child" RssAnon)))
  done
  echo "$rss $anon"
}

declare -A ROW=()
snapshot() { # PHASE
  local target pid
  for target in "${TARGETS[@]}"; do
    pid=${PID[$target]}
    pid_alive "$pid" || die "$target (pid $pid) died"
    ROW[$1:$target]="$(kb "$pid" VmRSS) $(kb "$pid" RssAnon) $(kb "$pid" RssFile) $(exe_kb "$pid") $(children_kb "$pid") $(kb "$pid" VmHWM)"
  done
}

log "idle: a few reads of each file, then ${IDLE}s"
for target in "${TARGETS[@]}"; do
  for file in $FILES uptime loadavg; do in_cgroup bench cat "${ROOT[$target]}/proc/$file" > /dev/null; done
done
sleep "$IDLE"
snapshot idle

log "load: ${LOAD}s of reads per file and daemon (2 readers), then ${SETTLE}s"
for target in "${TARGETS[@]}"; do
  for file in $FILES; do in_cgroup bench "$READER" -j 2 -d "$LOAD" "${ROOT[$target]}/proc/$file" > /dev/null; done
done
sleep "$SETTLE"
snapshot after-load

echo
echo "Idle memory, kB: isolfs vs LXCFS ($(nproc) CPUs, kernel $(uname -r), node $(node --version))"
for target in "${TARGETS[@]}"; do echo "  $target: ${WHAT[$target]}"; done
echo "  plain: mount only; prod: ${PROD_ARGS[*]} (deploy/daemonset.yaml)"
echo "  file = mapped files (clean, shared, reclaimable), of which exe = the executable (node, lxcfs);"
echo "  children = the daemon's child processes"
for phase in idle after-load; do
  echo
  [[ $phase == idle ]] && echo "idle ${IDLE}s after start:" || echo "idle ${SETTLE}s after ${LOAD}s of reads per file:"
  printf "%-20s %9s %9s %9s %9s %12s %14s %9s\n" daemon VmRSS anon file "  exe" children "children anon" VmHWM
  for target in "${TARGETS[@]}"; do
    read -r rss anon file exe crss canon hwm <<< "${ROW[$phase:$target]}"
    printf "%-20s %9s %9s %9s %9s %12s %14s %9s\n" "$target" "$rss" "$anon" "$file" "$exe" "$crss" "$canon" "$hwm"
  done
done
