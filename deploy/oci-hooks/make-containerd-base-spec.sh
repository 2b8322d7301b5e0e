#!/bin/sh
# Writes containerd's default OCI spec with the isolfs hook added (the file base_runtime_spec
# names, see containerd-config.toml): `ctr oci spec` gives the spec containerd would start from,
# and its "hooks" member is replaced by containerd-hooks.json. Needs ctr and python3 (no jq).
#   deploy/oci-hooks/make-containerd-base-spec.sh [OUTPUT]   default /etc/containerd/isolfs-base-spec.json
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-/etc/containerd/isolfs-base-spec.json}
hooks=${ISOLFS_HOOKS_JSON:-$here/containerd-hooks.json}
ctr oci spec | python3 -c '
import json, sys
spec = json.load(sys.stdin)
spec["hooks"] = json.load(open(sys.argv[1]))
json.dump(spec, open(sys.argv[2] + ".new", "w"), indent=2)
' "$hooks" "$out"
mv "$out.new" "$out"
echo "wrote $out: set base_runtime_spec to it (containerd-config.toml) and restart containerd"
