#!/usr/bin/env bash
# Attached files at kernel speed? open + read + close per second of /proc files, side by side in
# one run:
#   kernel           the kernel's own /proc/<file>, read on the host
#   attached         /proc/<file> inside a runc container (256 MiB limit) that had nothing bound
#                    at creation: isolfs --attach put its page-cache views there
#   shared           <isolfs mnt>/proc/<file> (the LXCFS-style hostPath path, per reader), read
#                    from a 256 MiB cgroup on the host
#   lxcfs            <lxcfs mnt>/proc/<file>, read from the same cgroup
# with 1 and 4 concurrent readers, cells interleaved over ROUNDS rounds (the order rotates each
# round), medians reported with the ratios attached/kernel and shared/lxcfs. Also checks, before
# measuring, that the attached file shows the container's limit (so the speed is not that of a
# file isolfs does not serve).
#
#   bench/attached.sh                       # ~2 minutes
#   DURATION=3 ROUNDS=5 bench/attached.sh   # steadier
#
# Environment: DURATION (seconds per cell, default 1.5), ROUNDS (default 3), READERS ("1 4"),
# FILES ("meminfo stat cpuinfo vmstat"), LOOP (isolfs --loop, default thread as in production).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-1.5}
ROUNDS=${ROUNDS:-3}
READERS=${READERS:-"1 4"}
FILES=${FILES:-"meminfo stat cpuinfo vmstat"}
LOOP=${LOOP:-thread}
MEMORY_LIMIT_BYTES=$((256 * 1024 * 1024))
RUNC_ROOT=""
CONTAINER=""

command -v runc > /dev/null || die "runc is not installed (apt-get install runc)"
command -v busybox > /dev/null || die "busybox is not installed (apt-get install busybox-static)"
command -v jq > /dev/null || die "jq is not installed (apt-get install jq)"

bench_init
# The runc container goes before bench_cleanup's steps (it holds a cgroup and mounts of ours).
cleanup_container() {
  [[ -n $CONTAINER ]] && runc --root "$RUNC_ROOT" delete --force "$CONTAINER" > /dev/null 2>&1
  bench_cleanup
}
trap cleanup_container EXIT

build_reader
gcc -O2 -static -o "$BENCH_TMP/reader-static" "$BENCH_DIR/reader.c" || die "cannot build a static reader (libc6-dev)"

# --- daemons --------------------------------------------------------------------------------
start_lxcfs lxcfs
LXCFS_MNT=$DAEMON_MNT LXCFS_PID=$DAEMON_PID
build_isolfs || die "isolfs does not build"
# The container's cgroup: beneath our own memory cgroup (runc puts it at that path in every
# controller; the others are at / here, so that is beneath ours too).
PREFIX="$(own_cgroup_of memory)"
PREFIX="${PREFIX%/}/isolfs-bench-attached-$$"
start_isolfs isolfs --loop "$LOOP" --attach "$PREFIX" --attach-interval-ms 200
ISOLFS_MNT=$DAEMON_MNT ISOLFS_PID=$DAEMON_PID

# --- the container --------------------------------------------------------------------------
RUNC_ROOT="$BENCH_TMP/runc"
BUNDLE="$BENCH_TMP/bundle"
ROOTFS="$BUNDLE/rootfs"
mkdir -p "$RUNC_ROOT" "$ROOTFS"/{bin,proc,sys,dev,tmp,etc}
cp "$(command -v busybox)" "$ROOTFS/bin/busybox"
for applet in sh cat grep sleep; do ln -s busybox "$ROOTFS/bin/$applet"; done
cp "$BENCH_TMP/reader-static" "$ROOTFS/bin/reader"
runc spec --bundle "$BUNDLE"
jq --arg cg "$PREFIX/c1" --argjson mem "$MEMORY_LIMIT_BYTES" '
  .process.terminal = false | .process.args = ["sleep", "100000"] | .root = { path: "rootfs", readonly: true }
  | .linux.cgroupsPath = $cg | .linux.resources.memory = { limit: $mem }' "$BUNDLE/config.json" > "$BUNDLE/config.json.new"
mv "$BUNDLE/config.json.new" "$BUNDLE/config.json"
CONTAINER="isolfs-bench-$$"
# runc makes "$PREFIX/c1" in every hierarchy (the unified one of a hybrid host too), with every
# directory on the way that is not there yet (where our own cgroup is the root, all of them):
# note which those are, shallowest first, so the cleanup removes them deepest first.
for hierarchy in "$CGROUP_ROOT"/*/; do
  dir=${hierarchy%/}
  IFS=/ read -r -a parts <<< "${PREFIX#/}/c1"
  for part in "${parts[@]}"; do
    dir="$dir/$part"
    [[ -d $dir ]] || BENCH_CGROUP_DIRS+=("$dir")
  done
done
runc --root "$RUNC_ROOT" run --detach --bundle "$BUNDLE" "$CONTAINER" > "$BENCH_TMP/runc.log" 2>&1 || { cat "$BENCH_TMP/runc.log" >&2; die "runc run failed"; }

in_container() { runc --root "$RUNC_ROOT" exec "$CONTAINER" "$@"; }

want_kb=$((MEMORY_LIMIT_BYTES / 1024))
for ((i = 0; i < 100; i++)); do
  total=$(in_container grep MemTotal /proc/meminfo | awk '{ print $2 }')
  [[ $total == "$want_kb" ]] && break
  sleep 0.1
done
[[ $total == "$want_kb" ]] || die "the container's /proc/meminfo never showed its limit (MemTotal $total kB, want $want_kb): not attached"
log "attached: the container's /proc/meminfo says MemTotal $total kB"
create_cgroup bench memory=$MEMORY_LIMIT_BYTES

# --- measure --------------------------------------------------------------------------------
TARGETS=(kernel attached shared lxcfs)
read_cell() { # target file readers -> reader's output line
  case $1 in
    kernel) "$READER" -j "$3" -d "$DURATION" "/proc/$2" ;;
    attached) in_container /bin/reader -j "$3" -d "$DURATION" "/proc/$2" ;;
    shared) in_cgroup bench "$READER" -j "$3" -d "$DURATION" "$ISOLFS_MNT/proc/$2" ;;
    lxcfs) in_cgroup bench "$READER" -j "$3" -d "$DURATION" "$LXCFS_MNT/proc/$2" ;;
  esac
}
RESULTS="$BENCH_TMP/results"
: > "$RESULTS"
cpu_start_isolfs=$(cpu_ms "$ISOLFS_PID") cpu_start_lxcfs=$(cpu_ms "$LXCFS_PID")
for ((round = 1; round <= ROUNDS; round++)); do
  for file in $FILES; do
    for readers in $READERS; do
      for ((i = 0; i < ${#TARGETS[@]}; i++)); do
        target=${TARGETS[(i + round - 1) % ${#TARGETS[@]}]}
        [[ $target == lxcfs && ! -e $LXCFS_MNT/proc/$file ]] && continue # LXCFS does not serve vmstat
        out=$(read_cell "$target" "$file" "$readers") || die "$target /proc/$file with $readers readers failed"
        read -r rate bytes <<< "$(tr -s ' =' ' ' <<< "$out" | awk '{ print $6, $10 }')"
        echo "$file $readers $target $round $rate $bytes" >> "$RESULTS"
      done
    done
  done
  log "round $round/$ROUNDS done"
done
cpu_isolfs=$(( $(cpu_ms "$ISOLFS_PID") - cpu_start_isolfs )) cpu_lxcfs=$(( $(cpu_ms "$LXCFS_PID") - cpu_start_lxcfs ))

# --- report ---------------------------------------------------------------------------------
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
cell() { awk -v f="$1" -v r="$2" -v t="$3" -v c="$4" '$1 == f && $2 == r && $3 == t { print $c }' "$RESULTS" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }

echo
echo "open+read+close per second: kernel (host) vs isolfs attached (runc container) vs isolfs shared vs LXCFS"
echo "$(nproc) CPUs, kernel $(uname -r), isolfs --loop $LOOP, ${DURATION}s per cell, median of $ROUNDS rounds"
printf "%-8s %4s %10s %10s %10s %10s %16s %14s\n" file rdrs kernel/s attached/s shared/s lxcfs/s attached/kernel shared/lxcfs
for file in $FILES; do
  for readers in $READERS; do
    k=$(cell "$file" "$readers" kernel 5) a=$(cell "$file" "$readers" attached 5)
    s=$(cell "$file" "$readers" shared 5) l=$(cell "$file" "$readers" lxcfs 5)
    printf "%-8s %4s %10s %10s %10s %10s %16s %14s\n" "$file" "$readers" "$k" "$a" "$s" "$l" "$(ratio "$a" "$k")" "$(ratio "$s" "$l")"
  done
done
echo
echo "daemon CPU over the run: isolfs $((cpu_isolfs)) ms, lxcfs $((cpu_lxcfs)) ms; RSS: isolfs $(status_kb "$ISOLFS_PID" VmRSS) kB, lxcfs $(status_kb "$LXCFS_PID" VmRSS) kB"
