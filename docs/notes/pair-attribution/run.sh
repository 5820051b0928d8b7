#!/usr/bin/env bash
# Throw-away attribution builds (see ../pair-attribution.md): each variant is applied to the
# worktree WT by variant.py, counted with `.ci/callgrind ${OPS:-send-recv}`, its harness binary
# kept as $OUT/bin.VARIANT, and the worktree reverted (git checkout -- src examples).
# Usage: WT=/path/to/checkout OUT=/some/dir bash run.sh VARIANT...   (variant.py list: all names)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
WT=${WT:-/work/wt-attr}
OUT=${OUT:-/work/target-attr/attr-tools}
mkdir -p "$OUT"
for v in "$@"; do
  python3 "$HERE/variant.py" "$v" "$WT" || { echo "== $v: edit failed"; continue; }
  echo "== $v"
  (cd "$WT" && nice -n 10 bash .ci/callgrind ${OPS:-send-recv} 2>&1 | grep -v '^warning\|^ *|\|^ *=\|^$' | tail -5)
  cp "$WT/target/callgrind/target/release/callgrind" "$OUT/bin.$v" 2>/dev/null
  git -C "$WT" checkout -- src examples
done
git -C "$WT" status --short
