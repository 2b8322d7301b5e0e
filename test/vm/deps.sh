#!/usr/bin/env bash
# Installs (from Debian's archive, with apt) what test/vm/run.sh needs on the host, only if missing;
# `apt-get update` runs only when something is missing. Everything else the VM uses comes from the
# host itself (the host's root filesystem is shared read-only into the VM) or from the kernel
# package that run.sh fetches with `apt-get download`.
#   qemu-system-x86  the VM (TCG; KVM only when it really boots)
#   busybox-static   the initramfs userland, its cpio/depmod/modprobe, and PID 1 inside the VM
#   coreutils        timeout, stat, sha256sum (always present on Debian; listed so a miss is loud)
set -euo pipefail

want=(qemu-system-x86 busybox-static coreutils)

"$(dirname "$0")/../../scripts/apt-install.sh" isolfs-vm "${want[@]}"
