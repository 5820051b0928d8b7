"""Real processes: multiprocessing (spawn), subprocess, fork, SIGKILL."""

import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest

import shmq
import workers

HERE = os.path.dirname(os.path.abspath(__file__))


def test_exactly_once_across_three_producers_and_three_consumers(path):
    ctx = multiprocessing.get_context("spawn")
    q = shmq.Queue.create(path, 64, 16)
    out = ctx.Queue()
    count = 2000
    consumers = [ctx.Process(target=workers.consume, args=(q, out)) for _ in range(3)]
    producers = [ctx.Process(target=workers.produce, args=(q, p, count)) for p in range(3)]
    for proc in consumers + producers:
        proc.start()
    for proc in producers:
        proc.join(60)
        assert proc.exitcode == 0
    q.close()
    got = [pair for _ in consumers for pair in out.get(timeout=60)]
    for proc in consumers:
        proc.join(60)
        assert proc.exitcode == 0
    assert sorted(got) == [(p, s) for p in range(3) for s in range(count)]
    assert len(got) == len(set(got))  # exactly once


def test_message_of_sigkilled_consumer_is_redelivered_with_two_deliveries(path):
    ctx = multiprocessing.get_context("spawn")
    q = shmq.Queue.create(path, 8, 16)
    q.send(b"job 7")
    ready = ctx.Queue()
    child = ctx.Process(target=workers.hold_forever, args=(path, ready))
    child.start()
    assert ready.get(timeout=30) == (b"job 7", 1)
    with pytest.raises(shmq.Empty):
        q.try_recv()  # held by the child
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    with q.recv_in_place(timeout=10) as msg:
        assert bytes(msg) == b"job 7"
        assert msg.deliveries == 2
    assert q.stats()["redelivered"] == 1


def test_subprocess_receives_what_this_process_sent(path):
    q = shmq.Queue.create(path, 8, 64)
    q.send(b"across exec")
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "workers.py"), "recv", path],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "across exec"


def test_handle_inherited_across_fork_reopens_in_the_child(path):
    q = shmq.Queue.create(path, 8, 64)
    parent_gen = q._generation
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            ok = q._generation != parent_gen  # reopened: its own participant
            q.send(b"from child %d" % os.getpid())
            pids = {p["pid"] for p in q.stats()["participants"] if p["alive"]}
            ok = ok and os.getpid() in pids
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.waitpid(pid, 0)
    assert q.recv(timeout=10) == b"from child %d" % pid
    assert q._generation == parent_gen


def test_message_held_by_parent_is_not_released_by_a_forked_child(path):
    q = shmq.Queue.create(path, 8, 64)
    q.send(b"held")
    msg = q.recv_in_place()
    pid = os.fork()
    if pid == 0:
        # Dropping the inherited Message and handle must not release the parent's claim.
        del msg
        os._exit(0)
    os.waitpid(pid, 0)
    assert q.stats()["in_flight"] == 1
    assert bytes(msg) == b"held"
    msg.release()
    assert q.stats()["in_flight"] == 0
