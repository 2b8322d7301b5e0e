# Stage 2, PID 1 of the VM after switch_root, run by busybox sh from the host's root filesystem
# (shared read-only, under a tmpfs overlay): fresh /proc, /sys, /dev, /tmp, /run; cgroup v2 only,
# its controllers delegated, swap on zram; then `node_modules/.bin/vitest run <args>` (what
# `npx vitest` runs) from the project directory, in the cgroup the tests treat as their own.
# Prints the vitest output, then "ISOLFS-VM-EXIT=<vitest's exit code>", and powers off.
#
# Cgroup layout made here (see test/vm/README.md for what the tests must do on v2):
#   /sys/fs/cgroup                 root; subtree_control = +cpuset +cpu +io +memory +pids
#   /sys/fs/cgroup/init            this shell (PID 1) and the harness's own helpers
#   /sys/fs/cgroup/isolfs-vm       vitest and its workers; every controller available, none
#                                  enabled yet: a test makes it a parent by moving the processes
#                                  into a leaf child first (the "no internal processes" rule)

job="$1"
# Read the job now: /tmp (where the host put it) is about to be covered by a fresh tmpfs.
. "$job/env.sh"
. "$job/args.sh"

# An unexpected error before vitest runs must still end in a sentinel and a power-off.
finish() {
  echo "ISOLFS-VM-EXIT=$1"
  sync
  /bin/busybox poweroff -f
  sleep 10
}
fail() {
  echo "isolfs-vm: stage 2 failed: $*"
  finish 125
}

# busybox's own mount: the host's util-linux mount wants /proc, which is not there yet.
m() { /bin/busybox mount "$@" || fail "mount $*"; }
m -t proc -o nosuid,nodev,noexec proc /proc
m -t sysfs -o nosuid,nodev,noexec sysfs /sys
m -t devtmpfs -o mode=755,nosuid devtmpfs /dev
mkdir -p /dev/pts /dev/shm
m -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
m -t tmpfs -o nosuid,nodev tmpfs /dev/shm
# A project checked out under /tmp or /run would vanish under the fresh tmpfs: carry it across.
case "$ISOLFS_VM_PROJECT/" in
  /tmp/*|/run/*)
    mkdir -p /.isolfs-vm-project
    m --bind "$ISOLFS_VM_PROJECT" /.isolfs-vm-project ;;
esac
m -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
m -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
if [ -d /.isolfs-vm-project ]; then
  mkdir -p "$ISOLFS_VM_PROJECT"
  m --move /.isolfs-vm-project "$ISOLFS_VM_PROJECT"
fi
# The same mount options systemd uses on a cgroup v2 host (nsdelegate, memory_recursiveprot).
m -t cgroup2 -o nosuid,nodev,noexec,nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup
mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null || true
# busybox's applets: a minimal Debian host may have no iproute2. The tests' health server
# listens on 127.0.0.1, so lo must come up.
/bin/busybox hostname isolfs-vm
/bin/busybox ip link set lo up || fail "ip link set lo up"

echo "isolfs-vm: kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo) RAM"
echo "isolfs-vm: cmdline: $(cat /proc/cmdline)"
echo "isolfs-vm: stat -fc %T /sys/fs/cgroup: $(/usr/bin/stat -fc %T /sys/fs/cgroup)"
echo "isolfs-vm: cgroup mounts: $(grep -E ' cgroup2? ' /proc/mounts | tr '\n' ';')"
[ "$(/usr/bin/stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] || fail "/sys/fs/cgroup is not cgroup2"
# cgroup_no_v1=all: no v1 hierarchy can be mounted, so nothing can turn this host hybrid.
echo "isolfs-vm: probing a cgroup v1 memory mount (must be refused):"
if mkdir -p /run/v1probe && mount -t cgroup -o memory none /run/v1probe 2>/dev/null; then
  umount /run/v1probe
  fail "a cgroup v1 memory hierarchy could still be mounted (cgroup_no_v1=all ignored?)"
fi
echo "isolfs-vm: cgroup.controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
[ -c /dev/fuse ] || fail "/dev/fuse missing (fuse module not loaded?)"
# Swap, so that SwapTotal and memory.swap.max mean something: a compressed RAM disk (zram,
# loaded by stage 1), as many v2 hosts (Fedora's default) have. The cgroup v2 tests expect it.
[ -b /dev/zram0 ] || fail "/dev/zram0 missing (zram module not loaded?)"
echo 512M > /sys/block/zram0/disksize || fail "zram0 disksize"
/bin/busybox mkswap /dev/zram0 >/dev/null || fail "mkswap /dev/zram0"
/bin/busybox swapon /dev/zram0 || fail "swapon /dev/zram0"
echo "isolfs-vm: swap: $(awk '/SwapTotal/ {print $2 " kB"}' /proc/meminfo) on zram0"

cg=/sys/fs/cgroup
mkdir "$cg/init" "$cg/isolfs-vm" || fail "mkdir $cg/init $cg/isolfs-vm"
# The root may hold processes and delegate at once (it is exempt from "no internal processes"),
# but a real v2 host keeps its processes in leaves too; do the same so every test process sits
# in an ordinary non-root cgroup, as a container's processes would.
echo $$ > "$cg/init/cgroup.procs" || fail "move PID 1 into $cg/init"
for c in cpuset cpu io memory pids; do
  grep -qw "$c" "$cg/cgroup.controllers" || fail "controller $c not available in $cg/cgroup.controllers"
done
echo "+cpuset +cpu +io +memory +pids" > "$cg/cgroup.subtree_control" || fail "enable controllers at the root"
echo "isolfs-vm: root cgroup.subtree_control: $(cat $cg/cgroup.subtree_control)"
echo "isolfs-vm: the tests run in cgroup /isolfs-vm; its cgroup.controllers: $(cat $cg/isolfs-vm/cgroup.controllers)"

cd "$ISOLFS_VM_PROJECT" || fail "cd $ISOLFS_VM_PROJECT"
export HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
export ISOLFS_VM=1
# The tests assert what this VM promises (test/integration/cgroupv2.test.ts, cgroupns.test.ts):
# cgroup2fs only, swap, /proc/1/ns/cgroup readable. vitest.config.ts includes the v2-only file.
export ISOLFS_EXPECT_CGROUP2=1
# The project's own vitest (what `npx vitest` runs on the host), without npm's ~7 s start-up
# under emulation.
[ -n "${ISOLFS_VM_COMMAND:-}" ] || [ -x node_modules/.bin/vitest ] \
  || fail "$ISOLFS_VM_PROJECT/node_modules/.bin/vitest missing: build the project on the host first (scripts/deps.sh --test)"
echo "isolfs-vm: booted in $(cut -d' ' -f1 /proc/uptime) s; running: ${ISOLFS_VM_COMMAND:-vitest run $*}"
echo "isolfs-vm: ---------------- vitest output ----------------"
# stdout is a pipe, not the serial tty, so vitest prints its plain (non-interactive) report.
# The subshell moves itself into the tests' cgroup first, then becomes vitest.
set -o pipefail
if [ -n "${ISOLFS_VM_COMMAND:-}" ]; then
  # Diagnostics (ISOLFS_VM_COMMAND on the host): a shell command instead of vitest.
  sh -c 'echo $$ > /sys/fs/cgroup/isolfs-vm/cgroup.procs && exec bash -c "$ISOLFS_VM_COMMAND"' 2>&1 | cat
else
  sh -c 'echo $$ > /sys/fs/cgroup/isolfs-vm/cgroup.procs && exec node_modules/.bin/vitest run "$@"' vitest "$@" 2>&1 | cat
fi
status=$?
set +o pipefail
echo "isolfs-vm: ---------------- end of vitest output ----------------"
echo "isolfs-vm: vitest exited with $status after $(cut -d' ' -f1 /proc/uptime) s of VM uptime"
finish "$status"
