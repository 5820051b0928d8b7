"""One process: the API, every error type, buffers, in-place receives and reservations."""

import array
import os
import pickle
import shutil
import struct

import pytest

import shmq


def test_send_recv_round_trips_bytes(path):
    q = shmq.Queue.create(path, 8, 64)
    q.send(b"hello")
    assert q.recv() == b"hello"
    assert q.capacity == 8 and q.max_message_size == 64 and len(q) == 0


def test_every_buffer_type_is_sent_as_its_bytes(path):
    q = shmq.Queue.create(path, 16, 64)
    a = array.array("i", [1, 2, 3])
    q.send(b"b")
    q.send(bytearray(b"ba"))
    q.send(memoryview(b"xmvx")[1:3])
    q.send(a)
    assert q.recv() == b"b"
    assert q.recv() == b"ba"
    assert q.recv() == b"mv"
    assert q.recv() == a.tobytes()


def test_numpy_arrays_are_sent_when_contiguous_and_refused_otherwise(path):
    np = pytest.importorskip("numpy")
    q = shmq.Queue.create(path, 8, 256)
    x = np.arange(10, dtype=np.float64)
    q.send(x)
    assert np.frombuffer(q.recv(), dtype=np.float64).tolist() == x.tolist()
    with pytest.raises((BufferError, ValueError)):  # numpy says ValueError
        q.send(np.arange(20, dtype=np.int32)[::2])  # not contiguous
    assert len(q) == 0


def test_not_a_buffer_is_a_type_error_and_sends_nothing(path):
    q = shmq.Queue.create(path, 8, 64)
    with pytest.raises(TypeError):
        q.send("a str is not bytes")
    with pytest.raises(TypeError):
        q.send_batch([b"ok", 42])
    assert len(q) == 0


def test_try_calls_raise_full_and_empty(path):
    q = shmq.Queue.create(path, 2, 8)
    with pytest.raises(shmq.Empty):
        q.try_recv()
    q.try_send(b"1")
    q.try_send(b"2")
    with pytest.raises(shmq.Full):
        q.try_send(b"3")
    assert [q.try_recv(), q.try_recv()] == [b"1", b"2"]


def test_timeouts_raise_timeout_which_is_a_timeout_error(path):
    q = shmq.Queue.create(path, 1, 8)
    with pytest.raises(shmq.Timeout):
        q.recv(timeout=0.01)
    with pytest.raises(TimeoutError):
        q.recv_in_place(timeout=0.01)
    q.send(b"x")
    with pytest.raises(shmq.Timeout):
        q.send(b"y", timeout=0.01)
    with pytest.raises(shmq.Timeout):
        q.reserve(timeout=0.01)
    assert issubclass(shmq.Timeout, shmq.Error)
    with pytest.raises(ValueError):
        q.recv(timeout=-1)
    assert q.recv() == b"x"


def test_too_large_message_raises_and_sends_nothing(path):
    q = shmq.Queue.create(path, 4, 8)
    with pytest.raises(shmq.MessageTooLarge):
        q.send(b"nine bytes")
    with pytest.raises(shmq.MessageTooLarge):
        q.send_batch([b"ok", b"far too long"])
    assert len(q) == 0


def test_closed_queue_refuses_sends_and_drains_then_raises(path):
    q = shmq.Queue.create(path, 4, 8)
    q.send(b"last")
    assert q.close() is True
    assert q.closed
    with pytest.raises(shmq.Closed):
        q.send(b"x")
    assert q.recv() == b"last"
    with pytest.raises(shmq.Closed):
        q.recv()


def test_iteration_ends_when_closed(path):
    q = shmq.Queue.create(path, 8, 8)
    q.send_batch([b"a", b"b", b"c"])
    q.close()
    assert list(q) == [b"a", b"b", b"c"]


def test_batches(path):
    q = shmq.Queue.create(path, 4, 8)
    assert q.send_batch([b"1", bytearray(b"2"), b"3"]) == 3
    assert q.recv_batch(8) == [b"1", b"2", b"3"]
    with pytest.raises(shmq.Timeout):
        q.recv_batch(8, timeout=0.01)


def test_os_errors_are_pythons_own(path, tmp_path):
    with pytest.raises(FileNotFoundError):
        shmq.Queue.open(path)
    with pytest.raises(FileNotFoundError):
        shmq.Queue.inspect(path)
    shmq.Queue.create(path, 4, 8)
    with pytest.raises(FileExistsError):
        shmq.Queue.create(path, 4, 8)
    link = tmp_path / "link"
    os.symlink(path, link)
    with pytest.raises(PermissionError):
        shmq.Queue.open(str(link))
    with pytest.raises(ValueError):
        shmq.Queue.create(path + ".x", 4, 8, mode=0o666)
    with pytest.raises(ValueError):
        shmq.Queue.create(path + ".x", 4, 8, on_consumer_death="sometimes")


def test_corrupt_and_incompatible_files_are_refused(path, tmp_path):
    shmq.Queue.create(path, 4, 8)
    bad_magic = tmp_path / "magic"
    shutil.copyfile(path, bad_magic)
    os.chmod(bad_magic, 0o600)
    with open(bad_magic, "r+b") as f:
        f.write(b"NOTSHMQ!")
    with pytest.raises(shmq.Corrupt):
        shmq.Queue.open(str(bad_magic))
    bad_version = tmp_path / "version"
    shutil.copyfile(path, bad_version)
    os.chmod(bad_version, 0o600)
    with open(bad_version, "r+b") as f:
        f.seek(8)
        f.write(struct.pack("<I", 999))
    with pytest.raises(shmq.Incompatible):
        shmq.Queue.open(str(bad_version))


def test_too_many_handles(path):
    handles = [shmq.Queue.create(path, 4, 8)]
    with pytest.raises(shmq.TooManyHandles):
        for _ in range(600):
            handles.append(shmq.Queue.open(path))
    # The queue is fine: give one handle back and open again.
    handles.pop().release()
    handles.append(shmq.Queue.open(path))
    handles[0].send(b"ok")
    assert handles[-1].recv() == b"ok"


def test_recv_in_place_lends_the_slot_and_revokes_the_view_after(path):
    q = shmq.Queue.create(path, 4, 16)
    q.send(b"in place")
    with q.recv_in_place() as msg:
        assert msg.deliveries == 1
        assert bytes(msg) == b"in place" and len(msg) == 8
        view = msg.view
        assert view.readonly and bytes(view[3:5]) == b"pl"
        with pytest.raises(TypeError):
            view[0] = 1
    assert msg.released
    with pytest.raises(ValueError):
        view[0]
    with pytest.raises(ValueError):
        bytes(msg)
    assert len(q) == 0 and q.stats()["in_flight"] == 0


def test_reserve_fills_in_place_then_commit(path):
    q = shmq.Queue.create(path, 4, 16)
    r = q.reserve()
    r.view[:5] = b"hello"
    r.commit(5)
    with pytest.raises(ValueError):
        r.view[0]
    with pytest.raises(ValueError):
        r.commit(1)
    assert q.recv() == b"hello"
    with q.reserve() as r:  # left without commit: cancelled
        r.view[:1] = b"x"
    with pytest.raises(shmq.Empty):
        q.try_recv()
    r = q.reserve()
    with pytest.raises(shmq.MessageTooLarge):
        r.commit(17)
    r.commit(0)
    assert q.recv() == b""


def test_handle_context_manager_releases_the_handle(path):
    with shmq.Queue.create(path, 4, 8) as q:
        q.send(b"stays")
    with pytest.raises(ValueError):
        q.send(b"x")
    assert shmq.Queue.open(path).recv() == b"stays"


def test_stats_and_inspect(path):
    q = shmq.Queue.create(path, 4, 8, visibility_timeout=30.0, max_deliveries=3)
    q.send(b"x")
    s = q.stats()
    assert s["len"] == 1 and s["capacity"] == 4 and s["max_deliveries"] == 3
    assert s["visibility_timeout_ns"] == 30_000_000_000
    assert shmq.Queue.inspect(path)["sent"] == 1


def test_open_or_create_and_unlink(path):
    a = shmq.Queue.open_or_create(path, 4, 8)
    b = shmq.Queue.open_or_create(path, 4, 8)
    a.send(b"1")
    assert b.recv() == b"1"
    shmq.Queue.unlink(path)
    with pytest.raises(FileNotFoundError):
        shmq.Queue.open(path)


def test_pickled_queue_reopens_by_path(path):
    q = shmq.Queue.create(path, 4, 16)
    q2 = pickle.loads(pickle.dumps(q))
    q.send(b"via pickle")
    assert q2.recv() == b"via pickle"


def test_send_obj_recv_obj(path):
    q = shmq.Queue.create(path, 4, 128)
    q.send_obj({"a": [1, 2]})
    assert q.recv_obj() == {"a": [1, 2]}


def test_handles_are_usable_from_several_threads(path):
    import threading

    q = shmq.Queue.create(path, 64, 8)
    got = []

    def consumer():
        for msg in q:
            got.append(msg)

    threads = [threading.Thread(target=consumer) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(3000):
        q.send(struct.pack("<I", i))
    q.close()
    for t in threads:
        t.join()
    assert sorted(struct.unpack("<I", m)[0] for m in got) == list(range(3000))


def test_release_does_not_wait_for_a_blocked_receiver(path):
    import threading
    import time

    q = shmq.Queue.create(path, 4, 8)
    other = shmq.Queue.open(path)
    got = []
    t = threading.Thread(target=lambda: got.append(q.recv(timeout=30)))
    t.start()
    time.sleep(0.1)  # blocked in recv
    q.release()  # the blocked call keeps its own reference; release returns at once
    with pytest.raises(ValueError):
        q.try_send(b"x")
    other.send(b"still")
    t.join(30)
    assert got == [b"still"]
