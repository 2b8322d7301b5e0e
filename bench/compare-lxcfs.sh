#!/usr/bin/env bash
# What a reader inside a cgroup sees through isolfs and through LXCFS (lxcfs -l --enable-cfs),
# side by side with the kernel's own files, on the same cgroup:
#
#   case "quota":  cpu.cfs_quota_us=150000 / cfs_period_us=100000 (1.5 CPUs), memory 256 MiB
#   case "cpuset": cpuset.cpus=0, memory 256 MiB
#   case "all":    cpuset.cpus=0 and the 1.5-CPU quota, memory 256 MiB
#
# For each case: cpuinfo processor count, /sys/devices/system/cpu/online, cpuN rows of
# /proc/stat, the meminfo rows of ONE read per source (after the cgroup has put 64 MiB in a
# tmpfs file and holds ~32 MiB of anonymous memory, so free and available differ), whether a
# process in the cgroup can really allocate what each source calls MemAvailable (less 24 MiB
# for the process itself and the page cache it needs), and /proc/loadavg sampled every 5 s
# while 2 busy loops run in the cgroup for LOAD_SECONDS (default 40), then, the loops still
# running, how many times a column of a cpu line of /proc/stat went backwards over 50 reads
# 0.1 s apart. LXCFS updates its loads every 5 s; isolfs runs with its default interval (5 s).
#
#   bench/compare-lxcfs.sh          # ~3 minutes
#
# Environment: LOAD_SECONDS (default 40), CASES ("quota cpuset all"; also available:
# "quota-half", 0.5 CPU; "late", the 1.5-CPU quota with the loops started 10 s BEFORE either
# daemon is first asked for the cgroup's loadavg), ISOLFS_NO_BUILD=1 (use dist/ as it is),
# ISOLFS_SKIP=1 (LXCFS and kernel only).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

LOAD_SECONDS=${LOAD_SECONDS:-40}
CASES=${CASES:-"quota cpuset all"}
MEMORY_LIMIT_BYTES=$((256 * 1024 * 1024))

bench_init

SOURCES=(kernel lxcfs isolfs)
declare -A ROOT=([kernel]="" [isolfs]="")

start_lxcfs lxcfs
ROOT[lxcfs]=$DAEMON_MNT
ISOLFS_STATUS=pending
if [[ ${ISOLFS_SKIP:-0} == 1 ]]; then
  ISOLFS_STATUS="skipped (ISOLFS_SKIP=1)"
elif { [[ ${ISOLFS_NO_BUILD:-0} == 1 ]] && isolfs_available; } || build_isolfs; then
  start_isolfs isolfs
  ROOT[isolfs]=$DAEMON_MNT
  ISOLFS_STATUS="measured (default loop and loadavg interval)"
else
  ISOLFS_STATUS="pending (does not build yet)"
fi

# A private tmpfs: a file written there from inside the cgroup is charged to it as shmem.
TMPFS="$BENCH_TMP/tmpfs"
mkdir -p "$TMPFS"
mount -t tmpfs -o size=128m bench-tmpfs "$TMPFS"
BENCH_MOUNTS+=("$TMPFS")

# A process that touches N bytes of anonymous memory and exits 0; killed by the OOM killer
# (exit 137) when the cgroup cannot hold them.
ALLOC="$BENCH_TMP/alloc"
printf '%s\n' '#include <stdlib.h>' '#include <string.h>' \
  'int main(int c, char **v) { size_t n = strtoull(v[1], 0, 10); char *p = malloc(n); if (!p) return 2; memset(p, 1, n); return p[n / 2] == 1 ? 0 : 3; }' \
  > "$ALLOC.c"
gcc -O1 -o "$ALLOC" "$ALLOC.c" || die "cannot compile the allocation probe"

# meminfo_read CASE SOURCE: one read of the source's meminfo from inside the cgroup, kept in a
# file, so that MemFree and MemAvailable of a source come from the same moment.
meminfo_read() {
  local cg=$1 source=$2
  if [[ $source == isolfs && -z ${ROOT[isolfs]} ]]; then
    : > "$BENCH_TMP/meminfo-$cg-$source"
    return
  fi
  in_cgroup "$cg" cat "${ROOT[$source]}/proc/meminfo" > "$BENCH_TMP/meminfo-$cg-$source"
}

# alloc_probe CASE SOURCE: allocate (MemAvailable - 24 MiB) in the cgroup: "fits" or "OOM".
alloc_probe() {
  local cg=$1 source=$2 kb status=0
  kb=$(awk '$1 == "MemAvailable:" { print $2 }' "$BENCH_TMP/meminfo-$cg-$source")
  [[ -n $kb ]] || { echo "-"; return; }
  in_cgroup "$cg" "$ALLOC" $(((kb - 24 * 1024) * 1024)) || status=$?
  case $status in
    0) echo "$(((kb - 24 * 1024) / 1024)) MiB: fits" ;;
    137) echo "$(((kb - 24 * 1024) / 1024)) MiB: OOM-kill" ;;
    *) echo "$(((kb - 24 * 1024) / 1024)) MiB: exit $status" ;;
  esac
}

# read_in CASE SOURCE WHAT: one value, read by a process inside the cgroup.
read_in() {
  local cg=$1 source=$2 what=$3 root
  if [[ $source == isolfs && -z ${ROOT[isolfs]} ]]; then
    echo pending
    return
  fi
  root=${ROOT[$source]}
  case $what in
    processors) in_cgroup "$cg" grep -c '^processor' "$root/proc/cpuinfo" ;;
    online) in_cgroup "$cg" cat "$root/sys/devices/system/cpu/online" ;;
    statcpus) in_cgroup "$cg" awk '/^cpu[0-9]/ { n++; ids = ids (ids ? "," : "") substr($1, 4) } END { print n " (" ids ")" }' "$root/proc/stat" ;;
    MemTotal | MemFree | MemAvailable | Cached | Shmem | Active* | Inactive*)
      awk -v k="$what:" '$1 == k { v = $2 } END { print (v == "" ? "absent" : v) }' "$BENCH_TMP/meminfo-$cg-$source" ;;
    alloc) alloc_probe "$cg" "$source" ;;
    statback) # 50 reads 0.1 s apart: "<backward steps>/<comparisons> [first: line column]"
      in_cgroup "$cg" bash -c 'for i in $(seq 50); do cat "$1/proc/stat"; echo ===; sleep 0.1; done' _ "$root" | awk '
        /^===/ { reads++; next }
        /^cpu/ { for (i = 2; i <= NF; i++) { k = $1 ":" i; if (k in last) { n++; if ($i + 0 < last[k] + 0) { back++; if (first == "") first = $1 " col " i - 1 } } last[k] = $i } }
        END { printf "%d/%d%s\n", back, n, first == "" ? "" : " (" first ")" }' ;;
    loadavg) in_cgroup "$cg" cut -d' ' -f1-4 "$root/proc/loadavg" ;;
  esac
}

row() { # row CASE LABEL WHAT
  printf "  %-20s %-22s %-22s %-22s\n" "$2" "$(read_in "$1" kernel "$3")" "$(read_in "$1" lxcfs "$3")" "$(read_in "$1" isolfs "$3")"
}

memory_reference() { # the cgroup's own counters, for reading the meminfo rows
  local dir=${CG_DIR["$1:memory"]} kb
  if [[ -f $dir/memory.usage_in_bytes ]]; then
    kb=$(($(cat "$dir/memory.usage_in_bytes") / 1024))
    printf "  cgroup: limit %s kB, usage %s kB; memory.stat (kB): %s\n" "$(($(cat "$dir/memory.limit_in_bytes") / 1024))" "$kb" \
      "$(awk '$1 ~ /^(rss|cache|shmem|active_file|inactive_file|active_anon|inactive_anon)$/ { printf "%s %d  ", $1, $2 / 1024 }' "$dir/memory.stat")"
  else
    printf "  cgroup: memory.max %s, memory.current %s\n" "$(cat "$dir/memory.max")" "$(cat "$dir/memory.current")"
  fi
}

echo "isolfs vs LXCFS vs kernel, read from inside the same cgroup"
echo "$(nproc) CPUs, kernel $(uname -r), lxcfs $(lxcfs --version 2>&1 | head -n 1) (-l --enable-cfs); isolfs: $ISOLFS_STATUS"

for case_name in $CASES; do
  case $case_name in
    quota)
      create_cgroup quota memory=$MEMORY_LIMIT_BYTES quota=150000 period=100000
      title="quota: cpu.cfs_quota_us=150000 cpu.cfs_period_us=100000 (1.5 CPUs), memory 256 MiB" ;;
    cpuset)
      create_cgroup cpuset memory=$MEMORY_LIMIT_BYTES cpus=0
      title="cpuset: cpuset.cpus=0, memory 256 MiB" ;;
    all)
      create_cgroup all memory=$MEMORY_LIMIT_BYTES quota=150000 period=100000 cpus=0
      title="all: cpuset.cpus=0, cpu.cfs_quota_us=150000 cpu.cfs_period_us=100000, memory 256 MiB" ;;
    quota-half) # optional: on a 2-CPU machine 1.5 CPUs rounds up to every CPU; this one cuts
      create_cgroup quota-half memory=$MEMORY_LIMIT_BYTES quota=50000 period=100000
      title="quota-half: cpu.cfs_quota_us=50000 cpu.cfs_period_us=100000 (0.5 CPU), memory 256 MiB" ;;
    late) # optional: the loads of a cgroup that was busy before anyone asked
      create_cgroup late memory=$MEMORY_LIMIT_BYTES quota=150000 period=100000
      title="late: as quota, the busy loops started 10 s before the first loadavg read" ;;
    *) die "unknown case $case_name (quota, cpuset, all, quota-half, late)" ;;
  esac
  # Register the cgroup with both loadavg samplers before it gets busy: LXCFS starts tracking
  # a cgroup's load on its first read of /proc/loadavg ("late" is the exception, on purpose).
  if [[ $case_name != late ]]; then
    for source in lxcfs isolfs; do read_in "$case_name" "$source" loadavg > /dev/null; done
  fi

  # Memory in use by the cgroup: 64 MiB of tmpfs (shmem: cache that cannot be dropped) and
  # ~32 MiB of anonymous memory held by a sleeping shell.
  in_cgroup "$case_name" dd if=/dev/zero of="$TMPFS/$case_name" bs=1M count=64 status=none
  # (bash's own read -t waits without a child process, so stopping the shell empties the cgroup)
  mkfifo "$BENCH_TMP/hold-$case_name"
  in_cgroup_bg "$case_name" bash -c 'held=$(head -c 33554432 /dev/zero | tr "\0" x); exec 3<>"$1"; read -r -t 600 -u 3 _' _ "$BENCH_TMP/hold-$case_name"
  holder=$BG_PID
  sleep 2

  echo
  echo "== $title"
  printf "  %-20s %-22s %-22s %-22s\n" "" kernel lxcfs isolfs
  row "$case_name" "cpuinfo processors" processors
  row "$case_name" "cpu/online" online
  row "$case_name" "/proc/stat cpuN rows" statcpus
  memory_reference "$case_name"
  for source in "${SOURCES[@]}"; do meminfo_read "$case_name" "$source"; done
  for what in MemTotal MemFree MemAvailable Cached Shmem "Active(file)" "Inactive(file)"; do
    row "$case_name" "$what kB" "$what"
  done
  # The kernel column is the host's MemAvailable: not the cgroup's, no probe.
  printf "  %-20s %-22s %-22s %-22s\n" "alloc Avail-24MiB" "-" "$(read_in "$case_name" lxcfs alloc)" "$(read_in "$case_name" isolfs alloc)"

  stop_pid "$holder"
  rm -f "$TMPFS/$case_name"

  busy=()
  for _ in 1 2; do
    in_cgroup_bg "$case_name" sh -c 'while :; do :; done'
    busy+=("$BG_PID")
  done
  if [[ $case_name == late ]]; then
    sleep 10
    echo "  loadavg with 2 busy loops in the cgroup (running since t=-10s, first read at t=0; 4th field: running/total):"
  else
    echo "  loadavg with 2 busy loops in the cgroup (started at t=0; 4th field: running/total):"
  fi
  start=$(date +%s.%N)
  for ((t = 0; t <= LOAD_SECONDS; t += 5)); do
    # Sleep until t seconds after the loops started, whatever the reads above cost.
    sleep "$(awk -v s="$start" -v t="$t" -v now="$(date +%s.%N)" 'BEGIN { d = s + t - now; print (d > 0 ? d : 0) }')"
    row "$case_name" "t=${t}s" loadavg
  done
  # Still under load: does any column of any cpu line of /proc/stat ever go backwards?
  printf "  %-20s %-22s %-22s %-22s\n" "stat backward steps" "$(read_in "$case_name" kernel statback)" \
    "$(read_in "$case_name" lxcfs statback)" "$(read_in "$case_name" isolfs statback)"
  for pid in "${busy[@]}"; do stop_pid "$pid"; done
done
