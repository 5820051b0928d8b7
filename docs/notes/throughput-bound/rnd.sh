#!/bin/bash
# usage: SHMQ=path/to/shmq rnd.sh N ROW... : N rounds; each round runs every ROW once, in a
# random order, each in its own `shmq bench --quick --only ROW` (built with experiment.patch),
# and prints "round row M-msgs/s" from the patch's OCC line on standard error.
n=$1; shift
for i in $(seq "$n"); do
  for r in $(printf "%s\n" "$@" | shuf); do
    nice -n -15 "${SHMQ:-target/release/shmq}" bench --quick --only "$r" 2>&1 |
      awk -v i="$i" '$1=="OCC"{printf "%d %s %.2f\n", i, $2, $4}'
  done
done
