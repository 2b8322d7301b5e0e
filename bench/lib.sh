# Shared helpers for bench/run.sh and bench/compare-lxcfs.sh (sourced, not run).
#
# Everything these helpers create is registered here and undone by bench_cleanup, which the
# scripts install as a trap on EXIT/INT/TERM: processes are stopped by the pids we started,
# mounts are unmounted, cgroups removed, the temp dir deleted, even after a failure or Ctrl-C.
#
# Cgroups are created only beneath the cgroup this shell is already in, per controller (read
# from /proc/self/cgroup), and only the processes we start are moved into them.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT_ROOT=$(cd "$BENCH_DIR/.." && pwd)
CGROUP_ROOT=/sys/fs/cgroup
V1_CONTROLLERS=(memory cpu cpuacct cpuset pids blkio)

BENCH_TMP=""
BENCH_PIDS=()          # every background process we started (daemons, readers, busy loops)
BENCH_MOUNTS=()        # every mountpoint we mounted
BENCH_CGROUP_DIRS=()   # every cgroup directory we created, in creation order
declare -A CG_PROCS    # cgroup name -> space-separated cgroup.procs files to join it
declare -A CG_DIR      # "name:controller" -> directory

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

bench_init() {
  [[ $(id -u) == 0 ]] || die "run as root (FUSE mounts, cgroups)"
  BENCH_TMP=$(mktemp -d /tmp/isolfs-bench.XXXXXX)
  trap bench_cleanup EXIT
  trap 'log "interrupted"; exit 130' INT TERM
}

# Compile bench/reader.c into the temp dir; sets READER.
build_reader() {
  READER="$BENCH_TMP/reader"
  gcc -O2 -Wall -Wextra -o "$READER" "$BENCH_DIR/reader.c" || die "cannot compile bench/reader.c"
}

is_mounted() { awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo; }

pid_alive() { [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; }

# SIGTERM, wait up to 5 s, then SIGKILL; only ever a pid we started.
stop_pid() {
  local pid=$1 i
  pid_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 50; i++)); do
    pid_alive "$pid" || break
    sleep 0.1
  done
  pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
}

unmount_dir() {
  local dir=$1
  is_mounted "$dir" || return 0
  fusermount3 -u "$dir" 2>/dev/null || umount -l "$dir" 2>/dev/null || log "warning: cannot unmount $dir"
}

bench_cleanup() {
  local status=$? pid dir i
  trap - EXIT INT TERM
  # Undo everything, whatever fails on the way (the scripts run with set -e).
  set +e
  for pid in "${BENCH_PIDS[@]}"; do stop_pid "$pid"; done
  for dir in "${BENCH_MOUNTS[@]}"; do unmount_dir "$dir"; done
  # Children of killed processes may take a moment to leave a cgroup (rmdir fails with EBUSY).
  # Anything still in our cgroups is a process we started (or its child) that outlived its
  # parent: stop it by pid so the cgroups can go.
  for dir in "${BENCH_CGROUP_DIRS[@]}"; do
    for pid in $(cat "$dir/cgroup.procs" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  done
  for ((i = ${#BENCH_CGROUP_DIRS[@]} - 1; i >= 0; i--)); do
    dir=${BENCH_CGROUP_DIRS[i]}
    for _ in $(seq 50); do
      [[ -d $dir ]] || break
      rmdir "$dir" 2>/dev/null && break
      sleep 0.1
    done
    [[ -d $dir ]] && log "warning: cannot remove cgroup $dir"
  done
  [[ -n $BENCH_TMP && -d $BENCH_TMP ]] && rm -rf "$BENCH_TMP"
  exit "$status"
}

# --- cgroups --------------------------------------------------------------------------------

own_cgroup_of() { # controller -> our cgroup path in its v1 hierarchy
  awk -F: -v c="$1" '{ n = split($2, cs, ","); for (i = 1; i <= n; i++) if (cs[i] == c) { print $3; exit } }' /proc/self/cgroup
}

is_pure_v2() { [[ -f $CGROUP_ROOT/cgroup.controllers ]]; }

# create_cgroup NAME [memory=BYTES] [quota=US] [period=US] [cpus=LIST]
# Creates NAME beneath our own cgroup in every controller; CG_PROCS[NAME] lists its procs files.
create_cgroup() {
  local name=$1 leaf="isolfs-bench-$1-$$" memory="" quota="" period=100000 cpus="" arg
  shift
  for arg in "$@"; do
    case $arg in
      memory=*) memory=${arg#memory=} ;;
      quota=*) quota=${arg#quota=} ;;
      period=*) period=${arg#period=} ;;
      cpus=*) cpus=${arg#cpus=} ;;
      *) die "create_cgroup: unknown option $arg" ;;
    esac
  done
  local procs="" controller own dir
  if is_pure_v2; then
    # v2's "no internal processes" rule: our own cgroup must delegate controllers to children,
    # which it can only do while it holds no process itself. Moving ourselves is not our call.
    own=$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup)
    dir="$CGROUP_ROOT$own/$leaf"
    mkdir "$dir" || die "cannot create $dir"
    BENCH_CGROUP_DIRS+=("$dir")
    [[ -n $cpus ]] && { echo "$cpus" > "$dir/cpuset.cpus" || die "cannot set cpuset.cpus (is cpuset delegated to $own?)"; }
    [[ -n $memory ]] && { echo "$memory" > "$dir/memory.max" || die "cannot set memory.max (is memory delegated to $own?)"; }
    [[ -n $quota ]] && { echo "$quota $period" > "$dir/cpu.max" || die "cannot set cpu.max (is cpu delegated to $own?)"; }
    for controller in "${V1_CONTROLLERS[@]}"; do CG_DIR["$name:$controller"]=$dir; done
    procs="$dir/cgroup.procs"
  else
    for controller in "${V1_CONTROLLERS[@]}"; do
      [[ -d $CGROUP_ROOT/$controller ]] || continue
      own=$(own_cgroup_of "$controller")
      [[ -n $own ]] || continue
      dir="$CGROUP_ROOT/$controller${own%/}/$leaf"
      mkdir "$dir" || die "cannot create $dir"
      BENCH_CGROUP_DIRS+=("$dir")
      CG_DIR["$name:$controller"]=$dir
      procs+="$dir/cgroup.procs "
    done
    dir=${CG_DIR["$name:cpuset"]:-}
    if [[ -n $dir ]]; then
      # A v1 cpuset cgroup starts empty and refuses tasks until cpus and mems are set.
      echo "${cpus:-$(cat "$(dirname "$dir")/cpuset.cpus")}" > "$dir/cpuset.cpus" || die "cannot set $dir/cpuset.cpus"
      cat "$(dirname "$dir")/cpuset.mems" > "$dir/cpuset.mems" || die "cannot set $dir/cpuset.mems"
    fi
    dir=${CG_DIR["$name:memory"]:-}
    [[ -n $memory && -n $dir ]] && { echo "$memory" > "$dir/memory.limit_in_bytes" || die "cannot set $dir/memory.limit_in_bytes"; }
    dir=${CG_DIR["$name:cpu"]:-}
    if [[ -n $quota && -n $dir ]]; then
      echo "$period" > "$dir/cpu.cfs_period_us" || die "cannot set $dir/cpu.cfs_period_us"
      echo "$quota" > "$dir/cpu.cfs_quota_us" || die "cannot set $dir/cpu.cfs_quota_us"
    fi
  fi
  CG_PROCS[$name]=$procs
}

# in_cgroup NAME CMD...: runs CMD inside cgroup NAME and waits for it. The subshell moves itself
# into the cgroup and then execs CMD, so CMD's process is the one we moved.
in_cgroup() {
  local name=$1 file
  shift
  (
    for file in ${CG_PROCS[$name]}; do echo "$BASHPID" > "$file" || exit 125; done
    exec "$@"
  )
}

# in_cgroup_bg NAME CMD...: the same in the background; BG_PID is CMD's pid (registered for
# cleanup). Not `in_cgroup ... &`, whose $! would be an extra shell around CMD's process.
in_cgroup_bg() {
  local name=$1 file
  shift
  (
    for file in ${CG_PROCS[$name]}; do echo "$BASHPID" > "$file" || exit 125; done
    exec "$@"
  ) &
  BG_PID=$!
  BENCH_PIDS+=("$BG_PID")
}

# --- daemons --------------------------------------------------------------------------------

# wait_for_file PID FILE: until FILE is readable (the mount is serving), or PID died / 15 s.
wait_for_file() {
  local pid=$1 file=$2 i
  for ((i = 0; i < 150; i++)); do
    pid_alive "$pid" || return 1
    head -c 1 "$file" > /dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# start_lxcfs NAME: LXCFS on a private dir; sets DAEMON_PID and DAEMON_MNT.
start_lxcfs() {
  local name=$1
  DAEMON_MNT="$BENCH_TMP/$name"
  mkdir -p "$DAEMON_MNT"
  BENCH_MOUNTS+=("$DAEMON_MNT")
  lxcfs -f -l --enable-cfs -p "$BENCH_TMP/$name.pid" "$DAEMON_MNT" > "$BENCH_TMP/$name.log" 2>&1 &
  DAEMON_PID=$!
  BENCH_PIDS+=("$DAEMON_PID")
  wait_for_file "$DAEMON_PID" "$DAEMON_MNT/proc/meminfo" || { cat "$BENCH_TMP/$name.log" >&2; die "lxcfs did not start"; }
}

# Whether dist/ holds a daemon that can run (built CLI and native addon).
isolfs_available() {
  [[ -f $PROJECT_ROOT/dist/cli.js ]] && ls "$PROJECT_ROOT"/native/build/Release/*.node > /dev/null 2>&1
}

# Build dist/ with tsc; returns non-zero (and logs why) if the tree does not compile.
build_isolfs() {
  local out
  if ! out=$(cd "$PROJECT_ROOT" && node node_modules/typescript/bin/tsc -p tsconfig.json 2>&1); then
    log "isolfs does not compile right now:"
    printf '%s\n' "$out" | head -n 10 >&2
    return 1
  fi
  isolfs_available || { log "isolfs: dist/cli.js or the native addon is missing (npm install?)"; return 1; }
}

# image_env TREE: the environment TREE's image gives the daemon (the ENV lines of its Dockerfile's
# last stage: NODE_OPTIONS, MALLOC_ARENA_MAX, ...) as KEY=VALUE words, so that a bench starts each
# checkout's daemon the way its image does (an A/B compares each side's own settings). A tree
# without a Dockerfile gets what the image set before it had one: a 1 MiB young generation.
image_env() {
  if [[ -f $1/Dockerfile ]]; then
    awk '/^FROM / { env = "" } /^ENV / { sub(/^ENV +/, ""); env = env " " $0 } END { print env }' "$1/Dockerfile"
  else
    echo NODE_OPTIONS=--max-semi-space-size=1
  fi
}

# start_isolfs NAME [ARGS...]: the built CLI on a private dir; sets DAEMON_PID, DAEMON_MNT and
# DAEMON_VIEWS (its container-views tree, mounted with attach or repair; a tree older than the
# views tree is started without it). Node runs with the tree's image environment (image_env)
# plus ISOLFS_NODE_FLAGS, if set.
start_isolfs() {
  local name=$1 env_words
  shift
  DAEMON_MNT="$BENCH_TMP/$name"
  DAEMON_VIEWS="$BENCH_TMP/$name.views"
  mkdir -p "$DAEMON_MNT" "$BENCH_TMP/$name.state"
  BENCH_MOUNTS+=("$DAEMON_VIEWS" "$DAEMON_MNT")
  local views=()
  grep -q views-mountpoint "$PROJECT_ROOT/dist/cli.js" && views=(--views-mountpoint "$DAEMON_VIEWS")
  read -r -a env_words <<< "$(image_env "$PROJECT_ROOT")"
  env "${env_words[@]}" node ${ISOLFS_NODE_FLAGS:-} "$PROJECT_ROOT/dist/cli.js" "$DAEMON_MNT" --state-dir "$BENCH_TMP/$name.state" \
    "${views[@]}" --log-level warn "$@" \
    > "$BENCH_TMP/$name.log" 2>&1 &
  DAEMON_PID=$!
  BENCH_PIDS+=("$DAEMON_PID")
  wait_for_file "$DAEMON_PID" "$DAEMON_MNT/proc/meminfo" || { cat "$BENCH_TMP/$name.log" >&2; die "isolfs ($name) did not start"; }
}

# CPU time (user + system, all threads) of PID in milliseconds.
cpu_ms() {
  local ticks
  ticks=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  echo $((ticks * 1000 / $(getconf CLK_TCK)))
}

# status_kb PID FIELD: a kB field of /proc/PID/status (VmRSS, VmHWM).
status_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null; }
