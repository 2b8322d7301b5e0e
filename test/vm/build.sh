#!/usr/bin/env bash
# Builds, once, what the VM boots, into the cache directory (default /var/cache/isolfs-vm):
#   kernel-<ver>/vmlinuz            Debian's kernel, fetched with `apt-get download` and unpacked
#                                   with dpkg-deb -x (never installed as the host's kernel)
#   initramfs-<ver>-<hash>.cpio.gz  busybox-static, guest/init, and the modules the VM needs
#                                   (with their dependencies, from modules.dep), keyed by a hash
#                                   of everything that goes in, so a change rebuilds it
# Prints "KERNEL=<path>" and "INITRD=<path>" on stdout; progress goes to stderr.
# ISOLFS_VM_KERNEL=linux-image-6.1.0-NN-amd64 pins the package (default: what Debian's
# linux-image-amd64 depends on now).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${ISOLFS_VM_CACHE:-/var/cache/isolfs-vm}"
# Modules the VM loads, in any order (dependencies are added and ordered below):
# virtio_pci + 9pnet_virtio + 9p for the shared host root, overlay for writing on top of it,
# fuse for /dev/fuse, zram for the swap device stage 2 makes (SwapTotal, memory.swap.max).
modules=(virtio_pci 9pnet_virtio 9p overlay fuse zram)

say() { echo "isolfs-vm: $*" >&2; }
die() { echo "isolfs-vm: ERROR: $*" >&2; exit 1; }

mkdir -p "$cache"
exec 9>"$cache/lock"
flock -w 600 9 || die "another build holds $cache/lock for more than 10 minutes"

package="${ISOLFS_VM_KERNEL:-}"
if [ -z "$package" ]; then
  package="$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1)"
  if [ -z "$package" ]; then
    say "apt knows no linux-image-amd64; running apt-get update"
    apt-get update -qq
    package="$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1)"
  fi
  [ -n "$package" ] || die "cannot resolve Debian's linux-image-amd64 to a kernel package"
fi
version="${package#linux-image-}"
kdir="$cache/kernel-$version"

if [ ! -f "$kdir/.complete" ]; then
  say "fetching $package (once; cached in $kdir)"
  rm -rf "$kdir"
  mkdir -p "$kdir/tmp"
  # apt's _apt sandbox user cannot write a root-owned directory; let it (else apt warns).
  chown _apt "$kdir/tmp" 2>/dev/null || true
  (cd "$kdir/tmp" && apt-get download -q "$package" >&2) || die "apt-get download $package failed"
  mv "$kdir/tmp/"*.deb "$kdir/kernel.deb"
  dpkg-deb -x "$kdir/kernel.deb" "$kdir/tmp/root" || die "dpkg-deb -x failed"
  [ -f "$kdir/tmp/root/boot/vmlinuz-$version" ] || die "no boot/vmlinuz-$version in $package"
  # The package ships no modules.dep (its postinst runs depmod); busybox's depmod makes one.
  busybox depmod -b "$kdir/tmp/root" "$version" || die "depmod failed"
  cp "$kdir/tmp/root/boot/vmlinuz-$version" "$kdir/vmlinuz"
  cp "$kdir/tmp/root/boot/config-$version" "$kdir/config"
  cp "$kdir/tmp/root/lib/modules/$version/modules.dep" "$kdir/modules.dep"
  # The unpacked tree is 400 MB; the .deb (70 MB) stays to take modules from when the initramfs
  # is rebuilt.
  rm -rf "$kdir/tmp"
  touch "$kdir/.complete"
fi

# Dependencies first: modules.dep lists a module's dependencies (transitively), deepest last.
ordered=()
add_module() {
  local name="$1" line dep i
  line="$(grep -E "(^|/)$name\.ko:" "$kdir/modules.dep" | head -n1)"
  [ -n "$line" ] || die "module $name not in $package's modules.dep"
  local path="${line%%:*}"
  local deps=(${line#*:})
  for ((i = ${#deps[@]} - 1; i >= 0; i--)); do
    dep="${deps[$i]}"
    [[ " ${ordered[*]} " == *" $dep "* ]] || ordered+=("$dep")
  done
  [[ " ${ordered[*]} " == *" $path "* ]] || ordered+=("$path")
}
for name in "${modules[@]}"; do add_module "$name"; done

# busybox-static's binary: it runs in the initramfs without a libc, and is PID 1 of stage 2.
busybox=/bin/busybox
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' \
  || die "busybox-static is not installed (test/vm/deps.sh installs it)"
hash="$( (cat "$here/guest/init" "$here/build.sh" "$busybox"; printf '%s\n' "${ordered[@]}") | sha256sum | cut -c1-16)"
initrd="$cache/initramfs-$version-$hash.cpio.gz"

if [ ! -f "$initrd" ]; then
  say "building $initrd"
  staging="$(mktemp -d "$cache/initramfs.XXXXXX")"
  trap 'rm -rf "$staging"' EXIT
  mkdir -p "$staging"/{bin,dev,proc,sys,modules}
  cp "$busybox" "$staging/bin/busybox"
  for applet in sh mount umount insmod switch_root poweroff sleep cat mkdir; do
    ln -s busybox "$staging/bin/$applet"
  done
  install -m 755 "$here/guest/init" "$staging/init"
  dpkg-deb --fsys-tarfile "$kdir/kernel.deb" \
    | tar -x -C "$staging/modules" --strip-components=4 $(printf "./lib/modules/$version/%s " "${ordered[@]}") \
    || die "extracting modules from $kdir/kernel.deb failed"
  : > "$staging/modules/list"
  for ko in "${ordered[@]}"; do echo "$ko" >> "$staging/modules/list"; done
  (cd "$staging" && find . -mindepth 1 | busybox cpio -o -H newc -R 0:0 2>/dev/null | gzip -1 > "$initrd.tmp") \
    || die "cpio failed"
  mv "$initrd.tmp" "$initrd"
  # Older initramfs images of this kernel are stale now.
  for old in "$cache/initramfs-$version-"*.cpio.gz; do [ "$old" = "$initrd" ] || rm -f "$old"; done
fi

echo "KERNEL=$kdir/vmlinuz"
echo "INITRD=$initrd"
echo "KERNEL_VERSION=$version"
