"""Functions run in child processes (importable by multiprocessing's spawn)."""

import os
import struct
import sys
import time

import shmq


def produce(q, producer, count):
    """Sends `count` messages (producer, seq) to the pickled queue `q`."""
    for seq in range(count):
        q.send(struct.pack("<II", producer, seq))


def consume(q, out):
    """Receives until the queue is closed; puts every (producer, seq) received on `out`."""
    got = []
    for msg in q:
        got.append(struct.unpack("<II", msg))
    out.put(got)


def hold_forever(path, ready):
    """Claims a message in place, says so, and hangs (to be SIGKILLed)."""
    q = shmq.Queue.open(path)
    msg = q.recv_in_place(timeout=10)
    ready.put((bytes(msg), msg.deliveries))
    time.sleep(3600)


if __name__ == "__main__":
    # `python workers.py recv PATH`: prints one message received from PATH.
    if sys.argv[1] == "recv":
        print(shmq.Queue.open(sys.argv[2]).recv(timeout=10).decode(), flush=True)
    elif sys.argv[1] == "block":
        q = shmq.Queue.open(sys.argv[2])
        print("waiting", flush=True)
        try:
            q.recv()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(3)
    elif sys.argv[1] == "pid":
        print(os.getpid())
