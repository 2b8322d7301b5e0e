#!/usr/bin/env bash
# Replays the Dockerfile on this machine without a Docker engine, so CI exercises the image's
# build steps:
#   1. copies what the build stage COPYs (minus .dockerignore) into a scratch directory;
#   2. checks that the Debian packages its `apt-get install` lines name are installed here
#      (scripts/deps.sh installs them), and runs its other RUN lines there (scripts/build.sh:
#      npm ci, npm run build, npm prune --omit=dev);
#   3. assembles the runtime stage's tree from its `COPY --from=build` lines, failing on a missing
#      source, checks that the apt packages of the runtime stage are installed, that the
#      devDependencies are gone, and starts the assembled daemon (--version, --help) and loads
#      its native addon from there.
# The build stage's ENV lines are not applied: they describe the image (its Node headers live in
# /usr/local), while this machine's npm is configured for its own.
#   scripts/image-build.sh           build in a fresh scratch directory, removed afterwards
#   scripts/image-build.sh --keep    leave the scratch directory for inspection
#   ISOLFS_DOCKERFILE=FILE           replay another Dockerfile (the tests use a broken copy)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
dockerfile=$(realpath "${ISOLFS_DOCKERFILE:-Dockerfile}")
keep=0
[ "${1:-}" = "--keep" ] && keep=1

scratch=$(mktemp -d /tmp/isolfs-image-build.XXXXXX)
cleanup() { if [ "$keep" = 1 ]; then echo "image-build: kept $scratch"; else rm -rf "$scratch"; fi; }
trap cleanup EXIT

# The Dockerfile as logical lines: continuations joined, comments and blank lines dropped.
logical_lines() {
  awk '
    /^[[:space:]]*#/ && buf == "" { next }
    { line = $0
      if (sub(/\\[[:space:]]*$/, "", line)) { buf = buf line " "; next }
      line = buf line; buf = ""
      if (line ~ /^[[:space:]]*$/) next
      print line }
  ' "$dockerfile"
}

# Prints the packages of an `apt-get install` command that are not installed on this machine.
missing_apt_packages() {
  local words pkg in_install=0
  read -r -a words <<<"$1"
  for pkg in "${words[@]}"; do
    case "$pkg" in
      install) in_install=1; continue ;;
      '&&') in_install=0; continue ;;
      -*) continue ;;
    esac
    [ "$in_install" = 1 ] || continue
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || echo "$pkg"
  done
}

stage=0
build_workdir=""
runtime="$scratch/runtime"
build_root="$scratch/build"
mkdir -p "$runtime" "$build_root"
run_lines=()
runtime_copies=()
runtime_apt=()
entrypoint=""

while IFS= read -r line; do
  read -r instruction rest <<<"$line"
  case "${instruction^^}" in
    FROM) stage=$((stage + 1)) ;;
    WORKDIR) [ "$stage" = 1 ] && build_workdir=$rest ;;
    COPY)
      if [ "$stage" = 1 ]; then
        read -r -a args <<<"$rest"
        dest=${args[-1]}
        dest_dir="$build_root/${dest#./}"
        for src in "${args[@]:0:${#args[@]}-1}"; do
          [ -e "$repo/$src" ] || { echo "image-build: the build stage copies $src, which does not exist" >&2; exit 1; }
          if [[ "$dest" == */ ]]; then
            mkdir -p "$dest_dir"
            cp -a "$repo/$src" "$dest_dir"
          else
            mkdir -p "$(dirname "$dest_dir")"
            cp -a "$repo/$src" "$dest_dir"
          fi
        done
      else
        runtime_copies+=("$rest")
      fi
      ;;
    RUN)
      if [[ "$rest" == *apt-get* ]]; then
        [ "$stage" = 1 ] || runtime_apt+=("$rest")
        [ "$stage" = 1 ] && run_lines+=("APT $rest")
      elif [ "$stage" = 1 ]; then
        run_lines+=("$rest")
      fi
      ;;
    ENTRYPOINT) [ "$stage" -gt 1 ] && entrypoint=$rest ;;
  esac
done < <(logical_lines)

[ "$stage" = 2 ] || { echo "image-build: expected a build and a runtime stage in the Dockerfile, found $stage" >&2; exit 1; }
[ -n "$build_workdir" ] || { echo "image-build: the build stage has no WORKDIR" >&2; exit 1; }

# .dockerignore: what a `docker build` would not send (patterns relative to the context root).
if [ -f .dockerignore ]; then
  while IFS= read -r pattern; do
    [[ -z "$pattern" || "$pattern" == \#* ]] && continue
    (cd "$build_root" && shopt -s nullglob && for hit in $pattern; do rm -rf -- "$hit"; done)
  done < .dockerignore
fi

echo "image-build: build stage in $build_root"
for run in "${run_lines[@]}"; do
  if [[ "$run" == APT* ]]; then
    missing=$(missing_apt_packages "${run#APT }")
    [ -z "$missing" ] || { echo "image-build: the build stage installs packages missing here: $missing (run scripts/deps.sh)" >&2; exit 1; }
    continue
  fi
  echo "image-build: RUN $run"
  (cd "$build_root" && bash -euo pipefail -c "$run")
done

for run in "${runtime_apt[@]}"; do
  missing=$(missing_apt_packages "$run")
  [ -z "$missing" ] || { echo "image-build: the runtime stage installs packages missing here: $missing" >&2; exit 1; }
done

echo "image-build: runtime stage in $runtime"
for copy in "${runtime_copies[@]}"; do
  read -r -a args <<<"$copy"
  [[ "${args[0]}" == --from=build ]] || { echo "image-build: runtime COPY without --from=build: $copy" >&2; exit 1; }
  src=${args[1]} dest=${args[2]}
  [[ "$src" == "$build_workdir"/* ]] || { echo "image-build: runtime COPY from outside $build_workdir: $src" >&2; exit 1; }
  shopt -s nullglob
  matches=("$build_root"/${src#"$build_workdir"/})
  shopt -u nullglob
  [ "${#matches[@]}" -gt 0 ] && [ -e "${matches[0]}" ] || { echo "image-build: the build produced nothing for $src" >&2; exit 1; }
  if [[ "$dest" == */ ]]; then
    mkdir -p "$runtime$dest"
    cp -a "${matches[@]}" "$runtime$dest"
  else
    mkdir -p "$(dirname "$runtime$dest")"
    cp -a "${matches[0]}" "$runtime$dest"
  fi
  echo "image-build: COPY $src -> $dest"
done

# The runtime tree: the entrypoint exists, the devDependencies were pruned, it starts, its
# native parts load.
entry_script=$(node -e 'const e = JSON.parse(process.argv[1]); if (e[0] !== "node") process.exit(1); console.log(e[1])' "$entrypoint") ||
  { echo "image-build: ENTRYPOINT is not [\"node\", SCRIPT]: $entrypoint" >&2; exit 1; }
[ -f "$runtime$entry_script" ] || { echo "image-build: the entrypoint $entry_script is not in the runtime tree" >&2; exit 1; }
app_root=$(dirname "$(dirname "$runtime$entry_script")")
for dev in typescript vitest; do
  [ ! -e "$app_root/node_modules/$dev" ] || { echo "image-build: devDependency $dev survived npm prune" >&2; exit 1; }
done
version=$(node "$runtime$entry_script" --version)
node "$runtime$entry_script" --help >/dev/null
node -e 'for (const f of process.argv.slice(1)) require(f)' "$app_root"/native/build/Release/*.node
[ -x "$app_root/native/build/Release/isolfs-attach" ] || { echo "image-build: isolfs-attach is not executable in the runtime tree" >&2; exit 1; }
[ -x "$app_root/native/build/Release/isolfs-oci-hook" ] || { echo "image-build: isolfs-oci-hook is not executable in the runtime tree" >&2; exit 1; }
echo "image-build: ok: $version, runtime tree $(du -sh "$runtime" | cut -f1)"
