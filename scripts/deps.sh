#!/usr/bin/env bash
# Installs what isolfs needs on a Debian machine, as root, then builds it.
#   scripts/deps.sh            runtime + build dependencies (the daemon and the demo)
#   scripts/deps.sh --test     also what the tests and benchmarks use (lxcfs, runc, busybox, qemu, htop,
#                              tmux, podman, crun; containerd and mmdebstrap for test/conformance)
# Only installs what is missing, so a second run costs seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

want=(libfuse3-dev fuse3 pkg-config python3 make g++ procps util-linux)
if [ "${1:-}" = "--test" ]; then
  # gcc: test/integration/pressure.test.ts builds its C reader
  want+=(lxcfs runc busybox-static qemu-system-x86 htop tmux podman crun gcc)
  # test/conformance: podman and containerd run (as root: no uidmap) an image mmdebstrap builds
  # from Debian packages; tmux (above) gives htop a terminal.
  want+=(mmdebstrap containerd)
fi

scripts/apt-install.sh isolfs "${want[@]}"

# npm ci builds the native addon through node-gyp (the "install" script) against libfuse3-dev.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
# The linter (devDependency @biomejs/biome, pinned in package-lock.json) is a binary from an
# optional per-platform package: if npm skipped that, say so here rather than fail in the lint.
if [ "${1:-}" = "--test" ] && ! node_modules/.bin/biome --version >/dev/null 2>&1; then
  echo "isolfs: node_modules/.bin/biome does not run (its @biomejs/cli-* platform package is missing): rm -rf node_modules && npm ci" >&2
  exit 1
fi
# Rebuild the native parts when a source is newer than what was built (or nothing was).
for out in native/build/Release/isolfs_native.node native/build/Release/isolfs-attach; do
  if [ ! -f "$out" ] || [ -n "$(find native/src native/binding.gyp -newer "$out" -print -quit)" ]; then
    npm run --silent install
    break
  fi
done
npm run --silent build
