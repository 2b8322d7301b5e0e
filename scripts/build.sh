#!/usr/bin/env bash
# The production build, in one place: the Dockerfile's build stage runs it, and
# scripts/image-build.sh replays it on a scratch copy of the repo so CI exercises the same steps
# without a Docker engine. Needs Debian's libfuse3-dev, pkg-config, python3, make and g++.
#   npm ci            installs exactly the lockfile and builds native/ with node-gyp (the
#                     package's "install" script) against libfuse3-dev
#   npm run build     tsc: src/ -> dist/
#   npm prune         drops devDependencies (typescript, vitest, ...) from node_modules
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --no-audit --no-fund
npm run build
npm prune --omit=dev --no-audit --no-fund
