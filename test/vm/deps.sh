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

if [ "$(id -u)" != 0 ]; then
  echo "isolfs-vm: run as root (apt-get, and the VM's cache lives in a system directory)" >&2
  exit 1
fi

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "isolfs-vm: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
