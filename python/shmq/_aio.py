"""asyncio glue: a Rust future polled from the event loop, woken through an eventfd.

Each pending call is one ``AsyncOp``: ``poll()`` polls shmq's cancellation-safe future once;
when it waits, shmq's reactor threads (one per process, shared by every waiting call) wake it
by making the op's eventfd readable, which the loop watches with ``add_reader``. No thread per
call, no polling loop. A cancelled task drops the future: nothing was sent or received by it.
"""

import asyncio

__all__ = ["recv_async", "send_async", "recv_in_place_async"]


def _wake(fut):
    if not fut.done():
        fut.set_result(None)


async def _run(op):
    loop = asyncio.get_running_loop()
    try:
        while True:
            done, value = op.poll()
            if done:
                return value
            fut = loop.create_future()
            loop.add_reader(op.fd, _wake, fut)
            try:
                await fut
            finally:
                loop.remove_reader(op.fd)
    finally:
        # Done, failed or cancelled: drop the future (and its registration) now.
        op.cancel()


async def recv_async(queue):
    """``await queue.recv_async()``: the next message, as ``bytes``."""
    return await _run(queue._recv_op())


async def send_async(queue, data):
    """``await queue.send_async(data)``: sends ``data`` (copied when the call is made)."""
    return await _run(queue._send_op(data))


async def recv_in_place_async(queue):
    """``await queue.recv_in_place_async()``: the next message lent in place (a ``Message``)."""
    return await _run(queue._recv_in_place_op())
