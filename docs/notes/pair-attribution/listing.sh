#!/usr/bin/env bash
# For a binary kept by run.sh ($OUT/bin.VARIANT): instructions per pair by function
# (perfn.py), and the executed listing of try_send and try_recv (cgins.py) with their frame and
# spill counts (frames.py). 100000 pairs under callgrind --dump-instr=yes.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/work/target-attr/attr-tools}
v=$1
cd "$OUT"
nice -n 10 valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file=cg.$v ./bin.$v send-recv 100000 2>/dev/null
python3 "$HERE/perfn.py" cg.$v 100000 | head -4
for f in try_send try_recv; do
  python3 "$HERE/cgins.py" cg.$v bin.$v shmq::queue::Queue::$f 100000 2>/dev/null | awk '{print} / ret *$/{exit}' > list.$v.$f
  echo "$v $f: $(python3 "$HERE/frames.py" list.$v.$f)"
done
