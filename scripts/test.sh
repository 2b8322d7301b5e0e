#!/usr/bin/env bash
# Runs every test: installs what is missing, builds, runs the vitest suites on this machine
# (unit tests on fixtures + integration tests with real FUSE mounts, cgroups and tools), then the
# same integration tests inside a VM booted with a pure cgroup v2 kernel (test/vm/run.sh).
#   scripts/test.sh               everything
#   ISOLFS_SKIP_VM=1 scripts/test.sh   host suites only (says so loudly; CI never sets it)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test

# Strict types for the tests too (vitest itself strips types without checking them).
npx tsc -p tsconfig.test.json

status=0
npx vitest run "$@" || status=$?

if [ "${ISOLFS_SKIP_VM:-0}" = 1 ]; then
  echo "!!!! ISOLFS_SKIP_VM=1: the cgroup v2 VM suite was NOT run !!!!" >&2
else
  test/vm/run.sh || status=$?
fi
exit $status
