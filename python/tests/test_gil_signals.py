"""Blocking calls release the GIL and return for signals (Ctrl-C) at least every 50 ms."""

import os
import signal
import subprocess
import sys
import threading
import time

import shmq

HERE = os.path.dirname(os.path.abspath(__file__))


def test_blocking_recv_releases_the_gil(path):
    q = shmq.Queue.create(path, 8, 16)
    counted = []
    stop = threading.Event()

    def count():
        n = 0
        while not stop.is_set():
            n += 1
        counted.append(n)

    t = threading.Thread(target=count)
    t.start()
    # Holding the GIL for the whole wait would leave the counter thread a few switch
    # intervals at most; released, it runs the whole time.
    before = time.monotonic()
    try:
        q.recv(timeout=0.5)
    except shmq.Timeout:
        pass
    assert time.monotonic() - before >= 0.5
    stop.set()
    t.join()
    assert counted[0] > 100_000


def test_sigint_interrupts_a_blocking_recv_promptly(path):
    shmq.Queue.create(path, 8, 16)
    child = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "workers.py"), "block", path],
        stdout=subprocess.PIPE, text=True,
    )
    assert child.stdout.readline().strip() == "waiting"
    time.sleep(0.2)  # inside recv
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    assert child.stdout.readline().strip() == "interrupted"
    # Generous: the bound is 50 ms plus a loaded machine's scheduling.
    assert time.monotonic() - sent < 2.0
    assert child.wait(10) == 3


def test_signal_handler_runs_during_a_blocking_send(path):
    q = shmq.Queue.create(path, 1, 16)
    q.send(b"fills it")
    fired = []

    def handler(signum, frame):
        fired.append(signum)
        raise InterruptedError("from the handler")

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        try:
            q.send(b"waits", timeout=10)
        except InterruptedError:
            pass
        assert fired == [signal.SIGALRM]
    finally:
        signal.signal(signal.SIGALRM, old)
    assert q.recv() == b"fills it"
    assert len(q) == 0  # the interrupted send sent nothing
