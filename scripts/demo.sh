#!/usr/bin/env bash
# The main job: install what is missing, build, start isolfs, and show a demo container (a cgroup
# of 256 MiB and a quota of 1 CPU with its own mount namespace and the served files bound over /proc)
# beside the host. Then keeps serving until Ctrl-C, and cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

MNT=${ISOLFS_MOUNT:-/var/lib/isolfs/mnt}
STATE=${ISOLFS_STATE_DIR:-/var/lib/isolfs}
mkdir -p "$MNT" "$STATE"
leaf="isolfs-demo-$$"
created=()
daemon_pid=""

cleanup() {
  trap - EXIT INT TERM
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true
  fi
  for ((i=${#created[@]}-1; i>=0; i--)); do rmdir "${created[$i]}" 2>/dev/null || true; done
  echo "isolfs demo: stopped, unmounted and removed the demo cgroup"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

MALLOC_ARENA_MAX=1 node --max-semi-space-size=4 dist/cli.js "$MNT" --state-dir "$STATE" &
daemon_pid=$!
for _ in $(seq 100); do
  grep -q " $MNT " /proc/self/mountinfo && break
  kill -0 "$daemon_pid" 2>/dev/null || { echo "isolfs did not start" >&2; exit 1; }
  sleep 0.1
done

# The demo cgroup, beneath this shell's own cgroup in every hierarchy.
procs=()
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  own=$(awk -F: '$1=="0"{print $3}' /proc/self/cgroup)
  # v2: our own cgroup can't hold processes and delegate controllers: move into a leaf first.
  mkdir -p "/sys/fs/cgroup$own/isolfs-demo-self"; created+=("/sys/fs/cgroup$own/isolfs-demo-self")
  echo $$ > "/sys/fs/cgroup$own/isolfs-demo-self/cgroup.procs"
  echo "+memory +cpu +cpuset" > "/sys/fs/cgroup$own/cgroup.subtree_control" || true
  d="/sys/fs/cgroup$own/$leaf"; mkdir "$d"; created+=("$d")
  echo $((256*1024*1024)) > "$d/memory.max"; echo "100000 100000" > "$d/cpu.max"
  procs+=("$d/cgroup.procs")
else
  for c in memory cpu cpuacct cpuset pids; do
    own=$(awk -F: -v c="$c" '{n=split($2,a,","); for(i=1;i<=n;i++) if(a[i]==c) print $3}' /proc/self/cgroup)
    [ -n "$own" ] && [ -d "/sys/fs/cgroup/$c" ] || continue
    d="/sys/fs/cgroup/$c${own%/}/$leaf"; mkdir "$d"; created+=("$d")
    case $c in
      memory) echo $((256*1024*1024)) > "$d/memory.limit_in_bytes" ;;
      cpu) echo 100000 > "$d/cpu.cfs_period_us"; echo 100000 > "$d/cpu.cfs_quota_us" ;;
      cpuset) cat "$(dirname "$d")/cpuset.cpus" > "$d/cpuset.cpus"; cat "$(dirname "$d")/cpuset.mems" > "$d/cpuset.mems" ;;
    esac
    procs+=("$d/cgroup.procs")
  done
fi

binds=""
for f in /proc/meminfo /proc/cpuinfo /proc/stat /proc/vmstat /proc/loadavg /proc/uptime /proc/swaps /sys/devices/system/cpu/online; do
  binds+="mount --bind $MNT$f $f; "
done
show='echo "== free -m"; free -m; echo "== getconf _NPROCESSORS_ONLN: $(getconf _NPROCESSORS_ONLN)   nproc (sched_getaffinity, not virtualised): $(nproc)"; echo "== $(grep MemTotal /proc/meminfo)"; echo "== uptime:$(uptime)"; echo "== top"; top -bn1 | head -5'

echo; echo "################ the host ################"
bash -c "$show"
echo; echo "######## a container: 256 MiB, a CPU quota of 1 CPU (cgroup $leaf) ########"
join=""; for p in "${procs[@]}"; do join+="echo \$\$ > $p; "; done
bash -c "$join exec unshare -m -p -f --mount-proc --propagation private --kill-child bash -c '$binds $(printf '%s' "$show" | sed "s/'/'\\\\''/g")'"
echo
echo "isolfs is serving $MNT (files under $MNT/proc, $MNT/sys). Ctrl-C to stop."
wait "$daemon_pid"
