#!/usr/bin/env bash
# Installs the given Debian packages that are missing (apt-get update only when one is), as root.
# Shared by scripts/deps.sh and test/vm/deps.sh.   usage: scripts/apt-install.sh PREFIX PKG...
set -euo pipefail
prefix=$1
shift
if [ "$(id -u)" != 0 ]; then
  echo "$prefix: run as root (apt-get, FUSE mounts and cgroups need it)" >&2
  exit 1
fi
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "$prefix: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends keeps lxcfs and qemu from pulling a desktop's extras in.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
