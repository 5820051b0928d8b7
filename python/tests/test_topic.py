"""Topics: fanout into one queue per subscription."""

import pytest

import shmq


def test_publish_fans_out_to_every_subscription(path):
    t = shmq.Topic.create(path + ".topic", 64)
    t.subscribe(path + ".sub1", 8, 64)
    t.subscribe(path + ".sub2", 8, 64, prefix=b"b")
    t.publish(b"apple")
    t.publish(b"banana")
    a = shmq.Queue.open(path + ".sub1")
    b = shmq.Queue.open(path + ".sub2")
    assert a.recv_batch(8) == [b"apple", b"banana"]
    assert b.recv_batch(8) == [b"banana"]
    assert len(t.subscriptions()) == 2
    t.unsubscribe(path + ".sub2")
    t.publish(b"berry")
    assert len(b) == 0 and a.recv() == b"berry"


def test_full_blocking_subscription_refuses_try_publish_and_drop_one_drops(path):
    t = shmq.Topic.create(path + ".topic", 16)
    t.subscribe(path + ".sub1", 1, 16, when_full="drop")
    t.subscribe(path + ".sub2", 1, 16)
    t.try_publish(b"1")
    with pytest.raises(shmq.Full):
        t.try_publish(b"2")
    with pytest.raises(shmq.Timeout):
        t.publish(b"2", timeout=0.02)
    with pytest.raises(ValueError):
        t.subscribe(path + ".x", 1, 16, when_full="sometimes")
    with pytest.raises(FileNotFoundError):
        shmq.Topic.open(path + ".nothing")


def test_topic_opens_by_path(path):
    shmq.Topic.create(path + ".topic", 16)
    t = shmq.Topic.open(path + ".topic")
    assert t.max_message_size == 16
