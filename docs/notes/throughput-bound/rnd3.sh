#!/bin/bash
# usage: SHMQ=shmq IPCB=ipc-baseline rnd3.sh N ROW... : as rnd.sh; a ROW "ipcb:NAME" runs ipc-baseline's row NAME
n=$1; shift
for i in $(seq $n); do
  for r in $(printf "%s\n" "$@" | shuf); do
    case $r in
      ipcb:*) nice -n -15 ${IPCB:-ipc-baseline} --pin --runs 1 --tput-msgs 5000000 --only ${r#ipcb:} --json /tmp/ipcb-r.json 2>&1 | awk -v i=$i -v r=$r '/^  run 1/{printf "%d %s %.2f\n", i, r, $5}';;
      *) nice -n -15 ${SHMQ:-target/release/shmq} bench --quick --only $r 2>&1 | awk -v i=$i '$1=="OCC"{printf "%d %s %.2f\n", i, $2, $4}';;
    esac
  done
done
