#!/usr/bin/env bash
# Installs (from Debian's archive, with apt) what test/vm/run.sh needs on the host, only if missing;
# `apt-get update` runs only when something is missing. Everything else the VM uses comes from the
# host itself (the host's root filesystem is shared read-only into the VM) or from the kernel
# package that run.sh fetches with `apt-get download`.
#   qemu-system-x86  the VM (TCG; KVM only when it really boots)
#   busybox-static   the initramfs userland, its cpio/depmod, PID 1 inside the VM, and the
#                    guest's ip, hostname, mkswap and swapon (no iproute2 needed)
# The rest run.sh and build.sh call is Debian's essential/required set (coreutils, util-linux's
# flock, dpkg-deb, apt-get, gzip, tar, mawk), present on every Debian install.
set -euo pipefail

want=(qemu-system-x86 busybox-static)

"$(dirname "$0")/../../scripts/apt-install.sh" isolfs-vm "${want[@]}"
