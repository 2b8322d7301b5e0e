#!/usr/bin/env bash
# The OCI hook's cost and effect: runc containers (busybox, 128 MiB) whose first instruction is
#   grep MemTotal /proc/meminfo; grep "^nr_free_pages " /proc/vmstat; cat /sys/devices/system/cpu/online
# started N times each way, interleaved:
#   hook       createRuntime hook -> isolfs attaches before pivot_root (nothing bound at creation)
#   none       no hook (the daemon's periodic scan is 10 minutes away: the host's files)
#   absent     the hook, pointed at a socket nobody listens on (what a node without isolfs pays)
# For each: how long `runc run --detach` took (hooks included), when the first instruction's
# output was seen on the host (polled without forking, from just before `runc run`), and whether
# it was the container's (MemTotal = its limit, cpu/online = 0 under a 0.5-CPU quota). Medians and
# maxima, and the daemon's own time per hook request (its log).
#
#   bench/hook.sh            # N=20, ~30 s
#   N=50 bench/hook.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"

N=${N:-20}
MEMORY_LIMIT_BYTES=$((128 * 1024 * 1024))
RUNC_ROOT=""
LIVE=""

command -v runc > /dev/null || die "runc is not installed (apt-get install runc)"
command -v busybox > /dev/null || die "busybox is not installed (apt-get install busybox-static)"
command -v jq > /dev/null || die "jq is not installed (apt-get install jq)"

bench_init
cleanup_containers() {
  [[ -n $LIVE ]] && runc --root "$RUNC_ROOT" delete --force "$LIVE" > /dev/null 2>&1
  bench_cleanup
}
trap cleanup_containers EXIT

build_isolfs || die "isolfs does not build"
HOOK="$PROJECT_ROOT/native/build/Release/isolfs-oci-hook"
[[ -x $HOOK ]] || die "$HOOK is not built (npm install)"
PREFIX="$(own_cgroup_of memory)"
PREFIX="${PREFIX%/}/isolfs-bench-hook-$$"
SOCKET="$BENCH_TMP/hook/hook.sock"
start_isolfs isolfs --attach "$PREFIX" --attach-interval-ms 600000 --hook-socket "$SOCKET" --log-level info
ISOLFS_LOG="$BENCH_TMP/isolfs.log"

RUNC_ROOT="$BENCH_TMP/runc"
ROOTFS="$BENCH_TMP/rootfs"
mkdir -p "$RUNC_ROOT" "$ROOTFS"/{bin,proc,sys,dev,tmp,etc}
cp "$(command -v busybox)" "$ROOTFS/bin/busybox"
for applet in sh cat grep; do ln -s busybox "$ROOTFS/bin/$applet"; done
# runc makes "$PREFIX/<id>" in every hierarchy with the directories on the way: note those that
# are not there yet, shallowest first, so bench_cleanup removes them deepest first.
for hierarchy in "$CGROUP_ROOT"/*/; do
  dir=${hierarchy%/}
  IFS=/ read -r -a parts <<< "${PREFIX#/}"
  for part in "${parts[@]}"; do
    dir="$dir/$part"
    [[ -d $dir ]] || BENCH_CGROUP_DIRS+=("$dir")
  done
done

# bundle MODE ID: a bundle whose config.json has the hook as MODE says.
bundle() {
  local dir="$BENCH_TMP/bundle-$2" hooks='{}'
  mkdir -p "$dir"
  runc spec --bundle "$dir"
  case $1 in
    hook) hooks=$(jq -n --arg p "$HOOK" --arg s "$SOCKET" '{createRuntime: [{path: $p, args: ["isolfs-oci-hook", "--socket", $s]}]}') ;;
    absent) hooks=$(jq -n --arg p "$HOOK" --arg s "$BENCH_TMP/absent.sock" '{createRuntime: [{path: $p, args: ["isolfs-oci-hook", "--socket", $s]}]}') ;;
  esac
  jq --arg cg "$PREFIX/$2" --argjson mem "$MEMORY_LIMIT_BYTES" --arg rootfs "$ROOTFS" --argjson hooks "$hooks" '
    .process.terminal = false
    | .process.args = ["sh", "-c", "grep MemTotal /proc/meminfo; grep \"^nr_free_pages \" /proc/vmstat; cat /sys/devices/system/cpu/online; echo end"]
    | .root = { path: $rootfs, readonly: true } | .hooks = $hooks
    | .linux.cgroupsPath = $cg | .linux.resources.memory = { limit: $mem }
    | .linux.resources.cpu = { quota: 50000, period: 100000 }' "$dir/config.json" > "$dir/config.json.new"
  mv "$dir/config.json.new" "$dir/config.json"
  echo "$dir"
}

now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
RESULTS="$BENCH_TMP/results"
: > "$RESULTS"
want_kb=$((MEMORY_LIMIT_BYTES / 1024))
MODES=(hook none absent)
for ((i = 1; i <= N; i++)); do
  for ((m = 0; m < ${#MODES[@]}; m++)); do
    mode=${MODES[(m + i) % ${#MODES[@]}]}
    id="c$i-$mode"
    dir=$(bundle "$mode" "$id")
    out="$dir/out"
    : > "$out"
    t0=$(now_us)
    LIVE="isolfs-bench-$$-$id"
    runc --root "$RUNC_ROOT" run --detach --bundle "$dir" "$LIVE" > "$out" 2>&1 || { cat "$out" >&2; die "runc run failed"; }
    t1=$(now_us)
    # Poll the container's output without forking, until its last line.
    while :; do
      mapfile -t lines < "$out"
      ((${#lines[@]} > 0)) && [[ ${lines[${#lines[@]} - 1]} == end ]] && break
      (($(now_us) - t0 > 10000000)) && die "container $id printed nothing in 10 s"
    done
    t2=$(now_us)
    runc --root "$RUNC_ROOT" delete --force "$LIVE" > /dev/null 2>&1
    LIVE=""
    total=$(awk '/^MemTotal/ { print $2 }' "$out") online=$(tail -n 2 "$out" | head -n 1)
    correct=no
    [[ $total == "$want_kb" && $online == 0 ]] && correct=yes
    [[ $mode == hook && $correct == no ]] && log "container $id (hook) read MemTotal $total kB, cpu/online $online: $(tr '\n' ' ' < "$out")"
    echo "$mode $(((t1 - t0) / 1000)) $(((t2 - t0) / 1000)) $correct" >> "$RESULTS"
    rm -rf "$dir"
  done
done

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maxof() { sort -n | tail -n 1; }
col() { awk -v m="$1" -v c="$2" '$1 == m { print $c }' "$RESULTS"; }
echo
echo "runc run --detach -> first instruction's output, N=$N each, $(nproc) CPUs, kernel $(uname -r), runc $(runc --version | awk 'NR == 1 { print $3 }')"
printf "%-8s %16s %16s %22s %22s %10s\n" mode "run ms (median)" "run ms (max)" "first read ms (median)" "first read ms (max)" "correct"
for mode in "${MODES[@]}"; do
  printf "%-8s %16s %16s %22s %22s %10s\n" "$mode" "$(col "$mode" 2 | median)" "$(col "$mode" 2 | maxof)" \
    "$(col "$mode" 3 | median)" "$(col "$mode" 3 | maxof)" "$(col "$mode" 4 | grep -c yes)/$N"
done
grep -E '"level":(40|50)' "$ISOLFS_LOG" | head -n 5 >&2 || true
daemon_ms=$(jq -r 'select(.msg == "OCI hook request") | .ms' "$ISOLFS_LOG" 2>/dev/null || true)
echo "daemon's time per hook request (ms): median $(median <<< "$daemon_ms"), max $(maxof <<< "$daemon_ms"), requests $(grep -c . <<< "$daemon_ms")"
