#!/bin/bash
# usage: SHMQ=shmq bracket.sh N - ROWS... : N rounds; a quick floor row before and after each quick throughput row
n=$1; b=$2; shift 2
fl() { nice -n -15 ${SHMQ:-target/release/shmq} bench --quick --only floor 2>/dev/null | awk '$1=="floor"{printf "[fl %s] ", $2}'; }
for i in $(seq $n); do
  line="r$i: "
  for r in "$@"; do
    line+=$(fl)
    line+=$(nice -n -15 ${SHMQ:-target/release/shmq} bench --quick --only $r 2>&1 | awk -v r=$r '$1=="OCC"{printf "%s %.1f ", r, $4}')
  done
  line+=$(fl)
  echo "$line"
done
