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
    counter = [0]
    stop = threading.Event()

    def count():
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=count)
    t.start()
    try:
        # The counter's progress while this thread sleeps 0.1 s with the GIL released...
        before = counter[0]
        time.sleep(0.1)
        reference = counter[0] - before
        # ...and while it waits 0.5 s in recv: held, the GIL would let the counter run for a
        # switch interval or two (5 ms each) at most.
        before = counter[0]
        try:
            q.recv(timeout=0.5)
        except shmq.Timeout:
            pass
        during = counter[0] - before
    finally:
        stop.set()
        t.join()
    assert during > reference, (during, reference)


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
    try:
        out, _ = child.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise AssertionError("SIGINT did not interrupt the blocking recv")
    assert out.strip() == "interrupted"
    # Generous: the bound is 50 ms plus a loaded machine's scheduling.
    assert time.monotonic() - sent < 2.0
    assert child.returncode == 3


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
