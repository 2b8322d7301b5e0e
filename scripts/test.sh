#!/usr/bin/env bash
# Runs every test: installs what is missing, builds, lints (npm run lint) and runs the unit lane
# (npm run test:unit) as uid 65534, both failing fast, then the vitest suites on this machine
# (unit tests on fixtures + integration tests with real FUSE mounts, cgroups and tools, + the
# hostile-reader stress test, + test/conformance: podman and containerd running a Debian image
# that mmdebstrap builds once into /var/cache/isolfs, ~2.5 min warm, ~3 more to build), then the integration and stress tests again with the native addon
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

# Fast lanes first (issue 11): a finding here stops CI in seconds, before any mount or VM.
failed_fast() {
  echo "isolfs: FAILED: $1; the test suites were not run" >&2
  exit 1
}

echo "isolfs: lint (npm run lint: biome, config in biome.jsonc)"
npm run --silent lint || failed_fast "lint (npm run lint) has findings, listed above"

# The unit lane as uid 65534 with no capabilities and a scrubbed environment: proof that none of
# its tests needs root. Where 65534 cannot read this tree (a clone under /root), it runs on a
# copy that it can read. A test that skips itself there fails the lane (vitest.unit.config.ts).
unit_lane_unprivileged() {
  local tree=$PWD home started
  if [ "$(id -u)" != 0 ]; then
    npx vitest run -c vitest.unit.config.ts
    return
  fi
  local as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  home=$(mktemp -d /tmp/isolfs-unit-home.XXXXXX)
  chown 65534:65534 "$home"
  if ! "${as_nobody[@]}" sh -c 'test -r "$1/package.json" && test -x "$1/node_modules/.bin/vitest" && test -r "$1/src"' sh "$tree"; then
    tree=$(mktemp -d /tmp/isolfs-unit-tree.XXXXXX)
    chmod 0755 "$tree"
    cp -a package.json tsconfig.json vitest.unit.config.ts src test native node_modules "$tree/"
    echo "isolfs: uid 65534 cannot read $PWD: the unit lane runs on a copy in $tree"
  fi
  started=$SECONDS
  (cd "$tree" && "${as_nobody[@]}" env -i PATH="$PATH" HOME="$home" CI="${CI:-}" TERM="${TERM:-dumb}" \
    sh -c 'echo "isolfs: unit lane as $(id -un 2>/dev/null || id -u) (uid $(id -u)), capabilities $(grep CapEff /proc/self/status | cut -f2)"; exec node_modules/.bin/vitest run -c vitest.unit.config.ts')
  local status=$?
  echo "isolfs: unit lane took $((SECONDS - started)) s (budget 30 s)"
  [ "$tree" = "$PWD" ] || rm -rf "$tree"
  rm -rf "$home"
  return $status
}
unit_lane_unprivileged || failed_fast "the unit lane (npm run test:unit, run as uid 65534)"

status=0
# Every lane's outcome, and every failed test by name (vitest.config.ts appends them), printed
# last: CI keeps only the tail of the log, and the tail must say what failed and where.
results=$(mktemp /tmp/isolfs-test-results.XXXXXX)
export ISOLFS_TEST_RESULTS=$results
lane() { # lane NAME COMMAND...: runs a lane, records its outcome; its failure fails the run
  local name=$1 code=0 started=$SECONDS
  shift
  "$@" || code=$?
  echo "isolfs lane $name: $([ "$code" = 0 ] && echo passed || echo "FAILED (exit $code)") after $((SECONDS - started)) s" >>"$results.summary"
  if [ "$code" != 0 ]; then
    status=1
    cat "$results" >>"$results.summary"
  fi
  : >"$results"
}
summary() {
  echo
  echo "isolfs: ================ summary of every lane ================"
  cat "$results.summary"
  rm -f "$results" "$results.summary"
}
# test/conformance runs in the vitest run below and fails there without these; said here first.
for tool in podman containerd ctr mmdebstrap tmux runc; do
  if ! command -v "$tool" >/dev/null; then
    echo "!!!! isolfs: $tool is not installed (scripts/deps.sh --test installs it): test/conformance WILL FAIL !!!!" | tee -a "$results.summary" >&2
    status=1
  fi
done
if [ "${CI:-}" = true ]; then
  lane host env ISOLFS_STRESS_SECONDS="${ISOLFS_STRESS_SECONDS:-600}" npx vitest run "$@"
else
  lane host npx vitest run "$@"
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
  echo "!!!! ISOLFS_SKIP_SANITIZE=1: the ASan+UBSan lane was NOT run !!!!" | tee -a "$results.summary" >&2
elif ! [ -f "$(gcc -print-file-name=libasan.so)" ]; then
  echo "isolfs: gcc has no libasan.so (Debian's g++ brings libasan8): the sanitizer lane cannot run" | tee -a "$results.summary" >&2
  status=1
else
  echo "isolfs: sanitizer lane: integration + stress tests with the ASan+UBSan addon"
  if sanitizer_build; then
    lane sanitizer env ISOLFS_SANITIZE=1 ISOLFS_STRESS_SECONDS=60 npx vitest run test/integration test/stress
  else
    echo "isolfs: the sanitizer build failed" >&2
    echo "isolfs lane sanitizer: FAILED (its build failed)" >>"$results.summary"
    status=1
  fi
fi

if [ "${ISOLFS_SKIP_VM:-0}" = 1 ]; then
  echo "!!!! ISOLFS_SKIP_VM=1: the cgroup v2 VM suite was NOT run !!!!" | tee -a "$results.summary" >&2
else
  lane vm test/vm/run.sh
fi
summary
exit $status
