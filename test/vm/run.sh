#!/usr/bin/env bash
# Runs the project's tests inside a VM with a pure cgroup v2 kernel (Debian's), and returns
# vitest's exit status from inside.
#
#   test/vm/run.sh [vitest args...]     default args: test/integration
#
# The VM: Debian's linux-image-*-amd64 under qemu (TCG), cgroup v1 disabled
# (cgroup_no_v1=all), cgroup2 at /sys/fs/cgroup with cpuset cpu io memory pids delegated. The
# host's root filesystem is shared read-only over 9p under a tmpfs overlay, so node, npm, the
# project, its node_modules and native build, procps, util-linux, fuse3, lxcfs, runc are the
# host's own, and nothing written inside comes back. Inside, from the project directory:
# `node_modules/.bin/vitest run <args>` (what `npx vitest` runs). See test/vm/README.md.
#
# Environment:
#   ISOLFS_VM_TIMEOUT  hard limit for the whole VM run in seconds (default 2400)
#   ISOLFS_VM_MEMORY   guest RAM (default 3G)     ISOLFS_VM_CPUS   guest CPUs (default 2)
#   ISOLFS_VM_ACCEL    tcg (default) | kvm | auto (auto: a 20 s probe boot; KVM if it boots)
#   ISOLFS_VM_CACHE    cache directory (default /var/cache/isolfs-vm)
#   ISOLFS_VM_KERNEL   kernel package to boot (default: what linux-image-amd64 depends on)
#   ISOLFS_VM_VERBOSE  1 = show the kernel's boot messages
#   ISOLFS_VM_COMMAND  diagnostics: a bash command to run in the tests' cgroup instead of vitest
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
project="$(cd "$here/../.." && pwd)"
started=$(date +%s.%N)

die() { echo "isolfs-vm: ERROR: $*" >&2; exit 1; }
elapsed() { awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" = 0 ] || die "run as root"
"$here/deps.sh" || die "test/vm/deps.sh could not install what the VM needs"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is not installed (test/vm/deps.sh installs qemu-system-x86)"
# The cpuset cases (cpuset.cpus "1") need a second CPU.
[ "${ISOLFS_VM_CPUS:-2}" -ge 2 ] 2>/dev/null || die "ISOLFS_VM_CPUS must be 2 or more, not '${ISOLFS_VM_CPUS:-}'"

build_out="$("$here/build.sh")" || die "building the VM's kernel/initramfs failed (see above)"
kernel="$(sed -n 's/^KERNEL=//p' <<<"$build_out")"
initrd="$(sed -n 's/^INITRD=//p' <<<"$build_out")"
kversion="$(sed -n 's/^KERNEL_VERSION=//p' <<<"$build_out")"
[ -f "$kernel" ] && [ -f "$initrd" ] || die "build.sh gave no kernel/initramfs"
echo "isolfs-vm: kernel $kversion, cache ready after $(elapsed) s"

# The job travels through the shared host root: the guest reads $job/env.sh and $job/args.sh.
job="$(mktemp -d /tmp/isolfs-vm-job.XXXXXX)"
log="$job/console.log"
qemu_pid=""
cleanup() {
  # The VM is ours: end it (by pid) if we are interrupted.
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then kill -TERM "$qemu_pid" 2>/dev/null || true; fi
  rm -rf "$job"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

quote() { local s="${1//\'/\'\\\'\'}"; printf "'%s' " "$s"; }
[ $# -gt 0 ] || set -- test/integration
{
  printf 'ISOLFS_VM_PROJECT=%s\n' "$(quote "$project")"
  # Colours only when the host prints to a terminal. (vitest's colour check looks at TERM, not
  # at a tty, and the guest's TERM is the kernel's "linux": say NO_COLOR for a log file or CI.)
  if [ -t 1 ]; then echo "export FORCE_COLOR=1"; elif [ -z "${FORCE_COLOR+x}" ]; then echo "export NO_COLOR=1"; fi
  for var in CI NO_COLOR FORCE_COLOR DEBUG ISOLFS_VM_COMMAND; do
    if [ -n "${!var+x}" ]; then printf 'export %s=%s\n' "$var" "$(quote "${!var}")"; fi
  done
} > "$job/env.sh"
{ printf 'set -- '; for arg in "$@"; do quote "$arg"; done; echo; } > "$job/args.sh"
chmod -R a+rX "$job"

accel="${ISOLFS_VM_ACCEL:-tcg}"
cmdline="console=ttyS0 panic=-1 oops=panic cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 isolfs.job=$job"
if [ "${ISOLFS_VM_VERBOSE:-0}" = 1 ]; then cmdline="$cmdline loglevel=7"; else cmdline="$cmdline quiet loglevel=4"; fi

qemu_args=(
  -machine q35 -m "${ISOLFS_VM_MEMORY:-3G}" -smp "${ISOLFS_VM_CPUS:-2}"
  -kernel "$kernel" -initrd "$initrd" -append "$cmdline"
  # The host's root, read-only; multidevs=remap keeps inode numbers unique across host mounts.
  -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
  -nic none -display none -monitor none -serial stdio -no-reboot
)

if [ "$accel" = auto ]; then
  # A probe boot with the real kernel and initramfs, cut short: isolfs.job=/nonexistent makes
  # stage 1 print its sentinel right after mounting the share. KVM only if that comes back.
  # The answer depends on the host kernel and qemu, so it is cached per both.
  probe="${ISOLFS_VM_CACHE:-/var/cache/isolfs-vm}/accel-$(uname -r)-$(qemu-system-x86_64 --version | head -n1 | tr -c 'A-Za-z0-9.\n' _)"
  if [ ! -f "$probe" ]; then
    echo "isolfs-vm: probing KVM (up to 20 s, once per host kernel and qemu version)"
    if [ -w /dev/kvm ] && timeout -k 5 20 qemu-system-x86_64 -accel kvm -cpu host "${qemu_args[@]/$job//nonexistent}" </dev/null 2>&1 | grep -q 'ISOLFS-VM-EXIT='; then
      echo kvm > "$probe"
    else
      echo tcg > "$probe"
    fi
  fi
  accel="$(cat "$probe")"
  echo "isolfs-vm: ISOLFS_VM_ACCEL=auto chose $accel (cached in $probe)"
fi
case "$accel" in
  kvm) qemu_args=(-accel kvm -cpu host "${qemu_args[@]}") ;;
  # -cpu max: every feature TCG emulates, so node's and glibc's fast paths are taken.
  tcg) qemu_args=(-accel tcg,thread=multi -cpu max "${qemu_args[@]}") ;;
  *) die "ISOLFS_VM_ACCEL must be tcg, kvm or auto, not '$accel'" ;;
esac

timeout_s="${ISOLFS_VM_TIMEOUT:-2400}"
echo "isolfs-vm: booting ($accel, ${ISOLFS_VM_CPUS:-2} CPUs, ${ISOLFS_VM_MEMORY:-3G}, timeout ${timeout_s} s): vitest run $*"
echo "isolfs-vm: qemu-system-x86_64 ${qemu_args[*]}"
vm_started=$(date +%s.%N)
# Serial console -> this process's stdout, live, and into $log to find the sentinel in.
set +e
exec 3> >(tr -d '\r' | tee "$log")
tee_pid=$!
# In the background so that a TERM/INT to this script ends the VM at once (cleanup), not after it.
timeout -k 10 "$timeout_s" qemu-system-x86_64 "${qemu_args[@]}" </dev/null >&3 2>&1 &
qemu_pid=$!
wait "$qemu_pid"
qemu_status=$?
qemu_pid=""
exec 3>&-
wait "$tee_pid" 2>/dev/null
set -e
vm_took=$(awk -v a="$vm_started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

code="$(grep -aoE '^ISOLFS-VM-EXIT=[0-9]+$' "$log" | tail -n1 | cut -d= -f2 || true)"
echo "isolfs-vm: VM run took ${vm_took} s (whole run.sh $(elapsed) s)"
if [ "$qemu_status" = 124 ] || [ "$qemu_status" = 137 ]; then
  die "the VM hit the ${timeout_s} s timeout and was killed (ISOLFS_VM_TIMEOUT)"
fi
if [ -z "$code" ]; then
  die "the VM ended (qemu status $qemu_status) without reporting vitest's exit status: no ISOLFS-VM-EXIT line on its console"
fi
if grep -aq '^isolfs-vm: stage [12] failed' "$log"; then
  die "the VM could not run the tests (see the stage 1/2 message above)"
fi

# The summary: what the VM booted into, what vitest counted, how long it all took. Taken from
# the console (colour codes stripped), and checked: a run that claims success without saying
# what it ran is not one.
plain="$(sed 's/\x1b\[[0-9;]*m//g' "$log")"
fstype="$(sed -n 's/^isolfs-vm: stat -fc %T \/sys\/fs\/cgroup: //p' <<<"$plain" | tail -n1)"
swap="$(sed -n 's/^isolfs-vm: swap: //p' <<<"$plain" | tail -n1)"
files_line="$(grep -aE '^ *Test Files +' <<<"$plain" | tail -n1 | sed 's/^ *//; s/  */ /g' || true)"
tests_line="$(grep -aE '^ *Tests +[0-9]' <<<"$plain" | tail -n1 | sed 's/^ *//; s/  */ /g' || true)"
echo "isolfs-vm: ================ summary ================"
echo "isolfs-vm: kernel $kversion ($accel), cmdline cgroup_no_v1=all; stat -fc %T /sys/fs/cgroup inside: ${fstype:-(not printed)}; swap ${swap:-(none)}"
[ "$fstype" = cgroup2fs ] || die "the VM did not report /sys/fs/cgroup as cgroup2fs"
if [ -n "${ISOLFS_VM_COMMAND:-}" ]; then
  echo "isolfs-vm: ISOLFS_VM_COMMAND exited with $code (no vitest run)"
  echo "isolfs-vm: VM run took ${vm_took} s; whole run.sh $(elapsed) s"
  exit "$code"
fi
echo "isolfs-vm: vitest run $*: ${files_line:-no Test Files line}; ${tests_line:-no Tests line}"
# The failed tests by name (vitest.config.ts lists them after "test(s) FAILED"), for scripts/test.sh's
# last lines.
failed_tests="$(tr -d '\r' <<<"$plain" | awk '/!!! isolfs: [0-9]+ test\(s\) FAILED/ {on=1; next} on && /^  / {print "  FAILED " substr($0, 3); next} {on=0}')"
if [ -n "$failed_tests" ]; then
  echo "isolfs-vm: failed inside the VM:"
  echo "$failed_tests"
  [ -z "${ISOLFS_TEST_RESULTS:-}" ] || echo "$failed_tests" >>"$ISOLFS_TEST_RESULTS"
fi
echo "isolfs-vm: VM run took ${vm_took} s; whole run.sh $(elapsed) s"
if [ "$code" = 0 ]; then
  # Exit 0 must come with a count of passed tests and no failures, or it is not believed.
  [ -n "$tests_line" ] || die "vitest exited 0 inside the VM but printed no 'Tests' summary line"
  grep -qE '^Tests [1-9][0-9]* passed' <<<"$tests_line" || die "vitest exited 0 inside the VM but its summary is not 'Tests N passed': $tests_line"
  if grep -qE '[0-9]+ failed' <<<"$tests_line $files_line"; then die "vitest exited 0 but reported failures: $tests_line"; fi
  echo "isolfs-vm: PASS: vitest inside the cgroup v2 VM exited with 0"
else
  echo "isolfs-vm: ERROR: FAIL: vitest inside the cgroup v2 VM exited with $code" >&2
fi
exit "$code"
