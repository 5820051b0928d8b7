#!/bin/bash
# usage: SHMQ=shmq IPCB=ipc-baseline vs2.sh N : N rounds of ipc-baseline's ring and Vyukov rows, then shmq bench's
for i in $(seq $1); do
  ${IPCB:-ipc-baseline} --pin --runs 1 --tput-msgs 5000000 --only spsc_ring_tput,mpmc_cursor_tput --json /tmp/vs2-$i.json 2>&1 | grep -E "^  run 1" | awk '{printf "ipcb %s %s  ", $3, $5}'
  nice -n -15 ${SHMQ:-target/release/shmq} bench --quick --only spsc_ring_tput,vy0,vy16,shmq_tput 2>&1 | awk '$1=="OCC"{printf "%s %.1f  ", $2, $4}'; echo
done
