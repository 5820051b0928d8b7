"""shmq: a lock-free, bounded, multi-producer multi-consumer message queue in a memory-mapped
file (by default under /dev/shm), with crash recovery, for processes on one host.

>>> import shmq
>>> q = shmq.Queue.create("/dev/shm/jobs", capacity=1024, max_message_size=256)
>>> q.send(b"resize image 42")
>>> q.recv()
b'resize image 42'

Every committed message is received by exactly one consumer; a consumer killed while holding
a message gives it back (``deliveries`` counts the claims). Messages are bytes: anything with
the buffer protocol goes in (``bytes``, ``bytearray``, ``memoryview``, ``array.array``, a
C-contiguous numpy array), ``bytes`` come out (or a zero-copy view, ``recv_in_place``).

Across ``fork``: a handle inherited by a child is the parent's participant; the child never
uses it (nor gives it back), and opens its own handle from the same path on its first call.
Pickled (``multiprocessing`` with spawn), a ``Queue`` or ``Topic`` travels as its path and
opens the queue again in the receiving process.
"""

from shmq import _errors
from shmq._errors import (
    Closed,
    Corrupt,
    Empty,
    Error,
    Expired,
    Full,
    Incompatible,
    MessageTooLarge,
    Timeout,
    TooManyHandles,
)
from shmq._shmq import Message, Queue, Reservation, Topic

__all__ = ["Queue", "Message", "Reservation", "Topic", *_errors.__all__]
