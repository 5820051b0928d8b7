"""The visibility timeout, Expired, and dead-lettering."""

import time

import pytest

import shmq


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.005)
    return False


def test_hold_past_visibility_timeout_expires_and_is_redelivered(path):
    q = shmq.Queue.create(path, 8, 16, visibility_timeout=0.05)
    q.send(b"slow job")
    first = q.recv_in_place()
    assert first.deliveries == 1
    again = q.recv_in_place(timeout=10)
    assert bytes(again) == b"slow job" and again.deliveries == 2
    with pytest.raises(shmq.Expired):
        first.ack()
    again.ack()
    assert q.stats()["expired"] >= 1


def test_extend_keeps_the_hold(path):
    q = shmq.Queue.create(path, 8, 16, visibility_timeout=0.2)
    q.send(b"long job")
    msg = q.recv_in_place()
    for _ in range(4):
        time.sleep(0.1)
        msg.extend(0.2)
    with pytest.raises(shmq.Empty):
        q.try_recv()
    msg.ack()


def test_message_reaching_max_deliveries_goes_to_the_dead_letter_queue(path):
    dlq = shmq.Queue.create(path + ".dlq", 8, 16)
    q = shmq.Queue.create(
        path, 8, 16, visibility_timeout=0.02, max_deliveries=2, dead_letter=path + ".dlq"
    )
    q.send(b"poison")
    held = [q.recv_in_place(timeout=10) for _ in range(2)]
    assert [m.deliveries for m in held] == [1, 2]
    # The second hold lapses too: delivered twice, it leaves for the dead-letter queue.
    assert wait_for(lambda: _poke(q) or len(dlq) == 1)
    with dlq.recv_in_place(timeout=10) as dead:
        assert bytes(dead) == b"poison"
    for m in held:
        m.release()
    assert q.stats()["dead_lettered"] == 1


def _poke(q):
    """A non-blocking receive: expiry is found by the queue's receivers."""
    try:
        q.try_recv()
    except shmq.Empty:
        pass
    return False
