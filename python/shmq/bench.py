"""``python -m shmq.bench``: 64-byte messages between two processes.

Measures, in one run, for shmq, ``multiprocessing.Queue``, ``multiprocessing.Pipe`` and
faster-fifo (when installed):

- one-way throughput: one producer process sends, one consumer process receives;
- round trip: a ping process and an echo process, p50 and p99 of one message there and back
  ("busy": both shmq sides poll with ``try_recv`` and never sleep, which needs a core each;
  "blocking": ``recv``, which spins briefly and then sleeps on the queue's futex; the other
  libraries use their blocking receives);

printed as ratios to ``multiprocessing.Queue`` (a table, or ``--json``); and the Python
layer's own cost: a ``try_send`` + ``try_recv`` pair called from Python against the same pair
called from Rust in a loop (``shmq._shmq._rust_pair_ns``).
"""

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
import uuid

import shmq
from shmq import _shmq

SIZE = 64
MSG = bytes(range(SIZE))
CTX = multiprocessing.get_context("fork")


def _path(tag):
    return f"/dev/shm/shmq-bench-{os.getpid()}-{tag}-{uuid.uuid4().hex[:8]}"


# --- one-way throughput -------------------------------------------------------------------


def _oneway(make, produce, consume, n):
    """Messages per second from a producer process to a consumer process."""
    chan = make()
    done = CTX.Event()
    start_evt = CTX.Event()

    def producer():
        start_evt.wait()
        produce(chan, n)

    p = CTX.Process(target=producer)
    p.start()
    start_evt.set()
    t0 = time.perf_counter()
    consume(chan, n)
    elapsed = time.perf_counter() - t0
    p.join()
    done.set()
    return n / elapsed


def shmq_oneway(n):
    path = _path("ow")
    q = shmq.Queue.create(path, 4096, SIZE)

    def produce(q, n):
        send = q.send
        for _ in range(n):
            send(MSG)

    def consume(q, n):
        recv = q.recv
        for _ in range(n):
            recv()

    try:
        return _oneway(lambda: q, produce, consume, n)
    finally:
        shmq.Queue.unlink(path)


def shmq_batch_oneway(n):
    path = _path("owb")
    q = shmq.Queue.create(path, 4096, SIZE)
    batch = [MSG] * 256

    def produce(q, n):
        for _ in range(n // 256):
            q.send_batch(batch)

    def consume(q, n):
        got = 0
        while got < (n // 256) * 256:
            got += len(q.recv_batch(256))

    try:
        return _oneway(lambda: q, produce, consume, n)
    finally:
        shmq.Queue.unlink(path)


def mpqueue_oneway(n):
    def produce(q, n):
        for _ in range(n):
            q.put(MSG)

    def consume(q, n):
        for _ in range(n):
            q.get()

    return _oneway(lambda: CTX.Queue(4096), produce, consume, n)


def pipe_oneway(n):
    r, w = CTX.Pipe(duplex=False)

    def produce(chan, n):
        send = chan[1].send_bytes
        for _ in range(n):
            send(MSG)

    def consume(chan, n):
        recv = chan[0].recv_bytes
        for _ in range(n):
            recv()

    return _oneway(lambda: (r, w), produce, consume, n)


def fifo_oneway(n):
    import faster_fifo

    def produce(q, n):
        for _ in range(n):
            q.put(MSG)

    def consume(q, n):
        for _ in range(n):
            q.get()

    return _oneway(lambda: faster_fifo.Queue(4096 * 1024), produce, consume, n)


# --- round trip ---------------------------------------------------------------------------


def _rtt(ping_pong, echo, n):
    """Round-trip times (seconds) of n messages, after a warm-up."""
    ready = CTX.Event()
    p = CTX.Process(target=echo, args=(n + 100, ready))
    p.start()
    ready.wait()
    times = ping_pong(n + 100)[100:]
    p.join()
    return times


def shmq_rtt(n, busy):
    a, b = _path("a"), _path("b")
    qa = shmq.Queue.create(a, 64, SIZE)
    qb = shmq.Queue.create(b, 64, SIZE)

    def echo(m, ready):
        ready.set()
        for _ in range(m):
            if busy:
                while True:
                    try:
                        msg = qa.try_recv()
                        break
                    except shmq.Empty:
                        pass
                qb.try_send(msg)
            else:
                qb.send(qa.recv())

    def ping_pong(m):
        out = []
        clock = time.perf_counter
        for _ in range(m):
            t0 = clock()
            if busy:
                qa.try_send(MSG)
                while True:
                    try:
                        qb.try_recv()
                        break
                    except shmq.Empty:
                        pass
            else:
                qa.send(MSG)
                qb.recv()
            out.append(clock() - t0)
        return out

    try:
        return _rtt(ping_pong, echo, n)
    finally:
        shmq.Queue.unlink(a)
        shmq.Queue.unlink(b)


def mpqueue_rtt(n):
    qa, qb = CTX.Queue(), CTX.Queue()

    def echo(m, ready):
        ready.set()
        for _ in range(m):
            qb.put(qa.get())

    def ping_pong(m):
        out = []
        for _ in range(m):
            t0 = time.perf_counter()
            qa.put(MSG)
            qb.get()
            out.append(time.perf_counter() - t0)
        return out

    return _rtt(ping_pong, echo, n)


def pipe_rtt(n):
    here, there = CTX.Pipe()

    def echo(m, ready):
        ready.set()
        for _ in range(m):
            there.send_bytes(there.recv_bytes())

    def ping_pong(m):
        out = []
        for _ in range(m):
            t0 = time.perf_counter()
            here.send_bytes(MSG)
            here.recv_bytes()
            out.append(time.perf_counter() - t0)
        return out

    return _rtt(ping_pong, echo, n)


def fifo_rtt(n):
    import faster_fifo

    qa, qb = faster_fifo.Queue(1 << 20), faster_fifo.Queue(1 << 20)

    def echo(m, ready):
        ready.set()
        for _ in range(m):
            qb.put(qa.get())

    def ping_pong(m):
        out = []
        for _ in range(m):
            t0 = time.perf_counter()
            qa.put(MSG)
            qb.get()
            out.append(time.perf_counter() - t0)
        return out

    return _rtt(ping_pong, echo, n)


# --- the Python layer's own cost ------------------------------------------------------------


def pair_cost(n):
    """(ns per try_send+try_recv pair from Python, the same from Rust)."""
    path = _path("pair")
    q = shmq.Queue.create(path, 64, SIZE)
    try:
        send, recv = q.try_send, q.try_recv
        best_py = float("inf")
        for _ in range(5):
            t0 = time.perf_counter_ns()
            for _ in range(n):
                send(MSG)
                recv()
            best_py = min(best_py, (time.perf_counter_ns() - t0) / n)
        best_rust = min(_shmq._rust_pair_ns(q, n, SIZE) for _ in range(5))
        # A Python loop calling a no-op method of the extension twice: the interpreter's share.
        nop = q._nop
        calls = float("inf")
        for _ in range(5):
            t0 = time.perf_counter_ns()
            for _ in range(n):
                nop(MSG)
                nop(MSG)
            calls = min(calls, (time.perf_counter_ns() - t0) / n)
        return best_py, best_rust, calls
    finally:
        shmq.Queue.unlink(path)


def run(quick=False):
    n_fast = 50_000 if quick else 300_000
    n_slow = 20_000 if quick else 100_000
    n_rtt = 2_000 if quick else 10_000
    rows = []
    have_fifo = True
    try:
        import faster_fifo  # noqa: F401
    except ImportError:
        have_fifo = False

    def row(name, oneway, rtts):
        rows.append(
            {
                "name": name,
                "oneway_msgs_per_s": oneway,
                "rtt_p50_us": statistics.median(rtts) * 1e6 if rtts else None,
                "rtt_p99_us": sorted(rtts)[int(len(rtts) * 0.99)] * 1e6 if rtts else None,
            }
        )

    row("multiprocessing.Queue", mpqueue_oneway(n_slow), mpqueue_rtt(n_rtt))
    row("multiprocessing.Pipe", pipe_oneway(n_slow), pipe_rtt(n_rtt))
    if have_fifo:
        row("faster-fifo", fifo_oneway(n_slow), fifo_rtt(n_rtt))
    row("shmq (send/recv; rtt busy)", shmq_oneway(n_fast), shmq_rtt(n_rtt, busy=True))
    row("shmq (rtt blocking)", None, shmq_rtt(n_rtt, busy=False))
    row("shmq (send_batch/recv_batch 256)", shmq_batch_oneway(n_fast * 4), [])
    base = rows[0]
    for r in rows:
        r["oneway_vs_mpqueue"] = (
            r["oneway_msgs_per_s"] / base["oneway_msgs_per_s"] if r["oneway_msgs_per_s"] else None
        )
        r["rtt_p50_vs_mpqueue"] = (
            r["rtt_p50_us"] / base["rtt_p50_us"] if r["rtt_p50_us"] else None
        )
    py_ns, rust_ns, calls_ns = pair_cost(200_000)
    return {
        "message_size": SIZE,
        "rows": rows,
        "pair_ns_python": py_ns,
        "pair_ns_rust": rust_ns,
        "pair_python_over_rust": py_ns / rust_ns,
        "two_empty_method_calls_ns": calls_ns,
    }


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m shmq.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--quick", action="store_true", help="fewer messages (a smoke run)")
    args = ap.parse_args(argv)
    res = run(quick=args.quick)
    if args.json:
        json.dump(res, sys.stdout, indent=2)
        print()
        return
    print(f"{SIZE}-byte messages between two processes; ratios to multiprocessing.Queue\n")
    print(f"{'':34} {'one-way msg/s':>14} {'x mp.Queue':>10} {'rtt p50 us':>11} {'x mp.Queue':>10} {'p99 us':>8}")
    for r in res["rows"]:
        print(
            f"{r['name']:34} {_fmt(r['oneway_msgs_per_s'], ',.0f'):>14} "
            f"{_fmt(r['oneway_vs_mpqueue'], '.2f'):>10} {_fmt(r['rtt_p50_us'], '.1f'):>11} "
            f"{_fmt(r['rtt_p50_vs_mpqueue'], '.3f'):>10} {_fmt(r['rtt_p99_us'], '.1f'):>8}"
        )
    print(
        f"\ntry_send+try_recv pair: {res['pair_ns_python']:.0f} ns from Python, "
        f"{res['pair_ns_rust']:.0f} ns from Rust ({res['pair_python_over_rust']:.2f}x); "
        f"two calls of a no-op method from the same loop: {res['two_empty_method_calls_ns']:.0f} ns"
    )


if __name__ == "__main__":
    main()
