#!/bin/bash
# usage: SHMQ=shmq occ.sh N - ROWS(comma-separated) : N rounds, each one quick run of floor + ROWS
n=$1; b=$2; rows=$3
for i in $(seq $n); do
  nice -n -15 ${SHMQ:-target/release/shmq} bench --quick --only floor,$rows 2>&1 | awk '$1=="OCC"{printf "%s %.1f  ", $2, $4} $1=="floor"{printf "[fl %s] ", $2}'; echo
done
