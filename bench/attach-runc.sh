#!/usr/bin/env bash
# From `runc start` to the first correct read inside, without a hook (issue 14): N runc
# containers (default 20), each created (`runc create`) and started (`runc start`) one after
# another under isolfs's --attach prefix, nothing bound at creation. The container's process is
# bench/attach-probe.c (static, bound read-only at /tmp/attach-probe): it polls every 1 ms until
# /proc/meminfo shows MemTotal = the container's limit and /proc/vmstat is isolfs's, and prints
# when. Measured: time from just before `runc start` to each first correct read (the attach
# itself may land during `runc create`, after runc's pivot_root: then the first read is correct).
#
#   bench/attach-runc.sh          # N=20
#
# Environment: N (20), TIMEOUT_MS (5000), ROOTFS (default: the tests' busybox rootfs,
# /var/tmp/isolfs-runc-rootfs; `npx vitest run test/integration/runc.test.ts` builds it).
# cgroup v1/hybrid only (relative cgroupsPath: runc puts the container beneath our cgroup).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

N=${N:-20}
TIMEOUT_MS=${TIMEOUT_MS:-5000}
ROOTFS=${ROOTFS:-/var/tmp/isolfs-runc-rootfs}
LIMIT_BYTES=$((192 * 1024 * 1024))
STATE=/run/isolfs-bench-runc-$$

bench_init
is_pure_v2 && die "cgroup v1/hybrid only (see the header)"
command -v runc > /dev/null || die "runc is not installed"
[[ -x $ROOTFS/bin/busybox ]] || die "no rootfs at $ROOTFS (npx vitest run test/integration/runc.test.ts builds it)"
isolfs_available || die "isolfs is not built (npm run install && npm run build)"
PROBE="$BENCH_TMP/attach-probe"
gcc -O2 -Wall -Wextra -static -o "$PROBE" "$BENCH_DIR/attach-probe.c" || die "cannot compile bench/attach-probe.c (static: libc6-dev)"

IDS=()
runc_cleanup() {
  local id
  for id in "${IDS[@]}"; do runc --root "$STATE" delete --force "$id" > /dev/null 2>&1 || true; done
  rm -rf "$STATE"
  [[ -n ${LOG_OUT:-} ]] && cp "$BENCH_TMP/isolfs.log" "$LOG_OUT"
  bench_cleanup
}
trap runc_cleanup EXIT

tag="isolfs-bench-runc-$$-"
prefix="$(own_cgroup_of memory)"
prefix="${prefix%/}/$tag"
start_isolfs isolfs --attach "$prefix" ${ISOLFS_ARGS:-}

# One bundle for all: the config differs only in the cgroup (given per container by --bundle copies).
make_bundle() {
  local bundle=$1 cgroup=$2
  mkdir -p "$bundle"
  runc spec --bundle "$bundle"
  node -e '
    const fs = require("fs");
    const [file, rootfs, probe, cgroup, limit, kb, timeout] = process.argv.slice(1);
    const c = JSON.parse(fs.readFileSync(file, "utf8"));
    c.process.terminal = false;
    c.process.args = ["/tmp/attach-probe", "wait", "--limit-kb", kb, "--timeout-ms", timeout];
    c.root = { path: rootfs, readonly: true };
    c.mounts.push({ destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "size=16m"] });
    c.mounts.push({ destination: "/tmp/attach-probe", type: "bind", source: probe, options: ["bind", "ro"] });
    c.linux.cgroupsPath = cgroup;
    c.linux.resources = { ...(c.linux.resources || {}), memory: { limit: Number(limit) } };
    fs.writeFileSync(file, JSON.stringify(c));
  ' "$bundle/config.json" "$ROOTFS" "$PROBE" "$cgroup" "$LIMIT_BYTES" $((LIMIT_BYTES / 1024)) "$TIMEOUT_MS"
}

results="$BENCH_TMP/results"
: > "$results"
failed=0
for ((i = 1; i <= N; i++)); do
  id="${tag}$i"
  bundle="$BENCH_TMP/bundle-$i"
  make_bundle "$bundle" "$id"
  IDS+=("$id")
  runc --root "$STATE" create --bundle "$bundle" "$id" > "$bundle/out" 2>&1 < /dev/null
  start_us=${EPOCHREALTIME/./}
  runc --root "$STATE" start "$id"
  for ((w = 0; w < TIMEOUT_MS / 10 + 200; w++)); do
    grep -q started_at_us "$bundle/out" 2> /dev/null && break
    sleep 0.01
  done
  line=$(grep started_at_us "$bundle/out" || echo "none")
  runc --root "$STATE" delete --force "$id" > /dev/null 2>&1 || true
  started=$(sed -n 's/.*started_at_us=\([0-9]*\).*/\1/p' <<< "$line")
  meminfo=$(sed -n 's/.*meminfo_us=\(-\?[0-9]*\).*/\1/p' <<< "$line")
  vmstat=$(sed -n 's/.*vmstat_us=\(-\?[0-9]*\).*/\1/p' <<< "$line")
  if [[ -z $started || $meminfo -lt 0 || $vmstat -lt 0 ]]; then failed=$((failed + 1)); log "c$i: $line"; continue; fi
  exec_us=$((started - start_us))
  echo "$exec_us $((exec_us + meminfo)) $((exec_us + vmstat))" >> "$results"
  [[ ${PRINT_EACH:-0} == 1 ]] && log "c$i: runc start -> probe running $exec_us us, meminfo +$meminfo us, vmstat +$vmstat us"
done

# column K of results: p50 p90 max in ms
stats() {
  awk -v k="$1" '{ print $k }' "$results" | sort -n | awk '{ a[NR] = $1 } END {
    if (NR == 0) { print "- - -"; exit }
    printf "%.1f %.1f %.1f", a[int(NR * 0.5 + 0.999)] / 1000, a[int(NR * 0.9 + 0.999)] / 1000, a[NR] / 1000 }'
}
read -r e50 e90 emax <<< "$(stats 1)"
read -r m50 m90 mmax <<< "$(stats 2)"
read -r v50 v90 vmax <<< "$(stats 3)"
printf '\nrunc, no hook, %d containers: from `runc start` to\n' "$N"
printf '  %-44s %8s %8s %8s\n' "" p50 p90 max
printf '  %-44s %5s ms %5s ms %5s ms\n' "the container's process running" "$e50" "$e90" "$emax"
printf '  %-44s %5s ms %5s ms %5s ms\n' "first correct read of /proc/meminfo" "$m50" "$m90" "$mmax"
printf '  %-44s %5s ms %5s ms %5s ms\n' "first read of isolfs's /proc/vmstat" "$v50" "$v90" "$vmax"
printf '  not attached within %d ms: %d\n' "$TIMEOUT_MS" "$failed"
