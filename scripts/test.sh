#!/usr/bin/env bash
# Runs every test: installs what is missing, builds, runs the vitest suites on this machine
# (unit tests on fixtures + integration tests with real FUSE mounts, cgroups and tools, + the
# hostile-reader stress test), then the integration and stress tests again with the native addon
# built with AddressSanitizer + UndefinedBehaviorSanitizer, then the integration tests inside a VM
# booted with a pure cgroup v2 kernel (test/vm/run.sh).
#   scripts/test.sh                         everything
#   ISOLFS_SKIP_VM=1 scripts/test.sh        no cgroup v2 VM (says so loudly; CI never sets it)
#   ISOLFS_SKIP_SANITIZE=1 scripts/test.sh  no sanitizer lane (says so loudly; CI never sets it)
# The stress test runs ISOLFS_STRESS_SECONDS (default 60); with CI=true the host suite runs it for
# 600 s (issue 10: it must hold for 10 minutes), the sanitizer lane for 60 s.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test

# Strict types for the tests too (vitest itself strips types without checking them).
npx tsc -p tsconfig.test.json

status=0
if [ "${CI:-}" = true ]; then
  ISOLFS_STRESS_SECONDS="${ISOLFS_STRESS_SECONDS:-600}" npx vitest run "$@" || status=$?
else
  npx vitest run "$@" || status=$?
fi

# The sanitizer build goes to native/sanitize/build/Release, beside (never over) the real one.
sanitizer_build() {
  local out=native/sanitize/build/Release/isolfs_native.node
  if [ -f "$out" ] && [ -z "$(find native/src native/binding.gyp native/sanitize/binding.gyp -newer "$out" -print -quit)" ]; then
    return 0
  fi
  # npm exec: node-gyp with npm's own configuration (nodedir), as `npm run install` has it.
  npm exec -c 'node-gyp rebuild --directory native/sanitize'
}

if [ "${ISOLFS_SKIP_SANITIZE:-0}" = 1 ]; then
  echo "!!!! ISOLFS_SKIP_SANITIZE=1: the ASan+UBSan lane was NOT run !!!!" >&2
elif ! [ -f "$(gcc -print-file-name=libasan.so)" ]; then
  echo "isolfs: gcc has no libasan.so (Debian's g++ brings libasan8): the sanitizer lane cannot run" >&2
  status=1
else
  echo "isolfs: sanitizer lane: integration + stress tests with the ASan+UBSan addon"
  if sanitizer_build; then
    ISOLFS_SANITIZE=1 ISOLFS_STRESS_SECONDS=60 npx vitest run test/integration test/stress || status=$?
  else
    echo "isolfs: the sanitizer build failed" >&2
    status=1
  fi
fi

if [ "${ISOLFS_SKIP_VM:-0}" = 1 ]; then
  echo "!!!! ISOLFS_SKIP_VM=1: the cgroup v2 VM suite was NOT run !!!!" >&2
else
  test/vm/run.sh || status=$?
fi
exit $status
