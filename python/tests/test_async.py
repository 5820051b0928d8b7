"""asyncio: recv_async, send_async, recv_in_place_async, and cancellation losing nothing."""

import asyncio
import threading

import shmq


def test_recv_async_is_woken_by_a_send_from_another_thread(path):
    q = shmq.Queue.create(path, 8, 16)

    async def main():
        task = asyncio.ensure_future(q.recv_async())
        await asyncio.sleep(0.05)
        assert not task.done()
        threading.Timer(0.05, q.send, (b"wake",)).start()
        return await asyncio.wait_for(task, 10)

    assert asyncio.run(main()) == b"wake"
    assert q.stats()["recv_sleepers"] == 0


def test_send_async_waits_for_room(path):
    q = shmq.Queue.create(path, 1, 16)
    q.send(b"first")

    async def main():
        task = asyncio.ensure_future(q.send_async(bytearray(b"second")))
        await asyncio.sleep(0.05)
        assert not task.done()
        assert q.recv() == b"first"
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    assert q.recv() == b"second"


def test_recv_in_place_async_lends_a_message(path):
    q = shmq.Queue.create(path, 4, 16)

    async def main():
        await q.send_async(b"in place")
        msg = await q.recv_in_place_async()
        with msg:
            return bytes(msg), msg.deliveries

    assert asyncio.run(main()) == (b"in place", 1)
    assert q.stats()["in_flight"] == 0


def test_cancelled_receives_lose_no_message(path):
    q = shmq.Queue.create(path, 1024, 16)
    total = 300

    async def main():
        got = []
        sent = 0
        while len(got) < total:
            tasks = [asyncio.ensure_future(q.recv_async()) for _ in range(4)]
            await asyncio.sleep(0)
            if sent < total:
                q.send(b"%d" % sent)
                sent += 1
            await asyncio.sleep(0.001)
            for t in tasks:
                t.cancel()
            for t in tasks:
                try:
                    got.append(await t)
                except asyncio.CancelledError:
                    pass
            if sent == total:
                while True:
                    try:
                        got.append(q.try_recv())
                    except shmq.Empty:
                        break
        return got

    got = asyncio.run(main())
    assert sorted(int(m) for m in got) == list(range(total))
    assert q.stats()["recv_sleepers"] == 0


def test_cancelled_send_sends_nothing(path):
    q = shmq.Queue.create(path, 1, 16)
    q.send(b"full")

    async def main():
        task = asyncio.ensure_future(q.send_async(b"never"))
        await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(main())
    assert q.recv() == b"full"
    assert len(q) == 0 and q.stats()["send_sleepers"] == 0


def test_async_closed_raises_closed(path):
    q = shmq.Queue.create(path, 4, 16)

    async def main():
        task = asyncio.ensure_future(q.recv_async())
        await asyncio.sleep(0.02)
        q.close()
        try:
            await asyncio.wait_for(task, 10)
        except shmq.Closed:
            return "closed"

    assert asyncio.run(main()) == "closed"
