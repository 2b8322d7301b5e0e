# isolfs: the FUSE daemon that serves per-container /proc files, as a node-level image.
# The build stage's steps live in scripts/build.sh, which scripts/image-build.sh also runs on a
# scratch copy of the repo (no Docker engine needed), so CI exercises the same build; that script
# also checks that every `COPY --from=build` source below exists and that the assembled runtime
# tree starts. Keep COPY lines one source (or one glob) per line so it can read them.

FROM node:20-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libfuse3-dev pkg-config python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
# node-gyp builds native/ against the headers this image ships instead of downloading them.
ENV npm_config_nodedir=/usr/local
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
COPY native ./native
COPY src ./src
COPY scripts/build.sh ./scripts/
COPY deploy/oci-hooks ./deploy/oci-hooks
RUN scripts/build.sh

FROM node:20-bookworm-slim
# libfuse3-3: the addon's shared library; fuse3: fusermount3; mount: umount -l for a dead mount.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libfuse3-3 fuse3 mount \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/isolfs
COPY --from=build /src/package.json /opt/isolfs/package.json
COPY --from=build /src/dist /opt/isolfs/dist
COPY --from=build /src/node_modules /opt/isolfs/node_modules
COPY --from=build /src/native/build/Release/*.node /opt/isolfs/native/build/Release/
COPY --from=build /src/native/build/Release/isolfs-attach /opt/isolfs/native/build/Release/isolfs-attach
# The OCI hook and its hooks.d file: the DaemonSet's install-hook init container copies them to the
# node (/opt/isolfs), where the container runtime runs the hook (deploy/oci-hooks/README.md).
COPY --from=build /src/native/build/Release/isolfs-oci-hook /opt/isolfs/native/build/Release/isolfs-oci-hook
COPY --from=build /src/deploy/oci-hooks/isolfs.json /opt/isolfs/oci-hooks/isolfs.json
COPY --from=build /src/deploy/oci-hooks/containerd-hooks.json /opt/isolfs/oci-hooks/containerd-hooks.json
RUN mkdir -p /var/lib/isolfs/mnt /var/lib/isolfs/state
ENV NODE_ENV=production
EXPOSE 9464
# No curl in the slim image: node asks the daemon's own health endpoint.
HEALTHCHECK --interval=20s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "require('http').get('http://127.0.0.1:9464/healthz', (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))"]
# A 4 MiB young generation: request garbage is short-lived. The default 16 MiB semi-spaces cost
# ~25-38 MB of RSS on every node; 1 MiB cost a full node (500 containers reading, bench/full-node.sh)
# 32-37 ms of GC a second and 2-3x the reads over 10 ms; 4 MiB halved both for ~1 MB of RSS.
ENV NODE_OPTIONS=--max-semi-space-size=4
# One malloc arena for all threads (main, FUSE, libuv's pool, V8's workers) instead of one per
# thread: ~4 MB less RSS once the daemon has served a burst, no measurable throughput cost
# (bench/memory.sh, bench/run.sh; docs/benchmarks.md "Memory"). bench/lib.sh starts the daemon
# with these ENV lines (one KEY=VALUE per word, no quotes), so keep them that way.
ENV MALLOC_ARENA_MAX=1
ENTRYPOINT ["node", "/opt/isolfs/dist/cli.js"]
CMD ["/var/lib/isolfs/mnt", "--state-dir", "/var/lib/isolfs/state", "--http", "0.0.0.0:9464"]
