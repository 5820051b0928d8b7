"""Type stubs of shmq (see the module docstring of shmq/__init__.py)."""

import os
import sys
from types import TracebackType
from typing import Any, Iterable, Iterator, List, Literal, Optional, Union

if sys.version_info >= (3, 12):
    from collections.abc import Buffer
else:
    from typing_extensions import Buffer  # pragma: no cover

from typing_extensions import Self

_Path = Union[str, "os.PathLike[str]"]

class Error(Exception):
    """Base of shmq's own exceptions."""

class Full(Error):
    """The queue holds `capacity` messages; nothing was sent."""

class Empty(Error):
    """No message is ready; nothing was received."""

class Closed(Error):
    """The queue was closed, and every message has been received."""

class Timeout(Error, TimeoutError):
    """The timeout passed first; nothing was sent or received."""

class Expired(Error):
    """The message's visibility timeout passed and it was handed out again."""

class Corrupt(Error):
    """The file or the shared memory holds something no honest shmq process writes."""

class Incompatible(Error):
    """The file is a queue of another layout version or platform."""

class MessageTooLarge(Error, ValueError):
    """The message is longer than the queue's maximum message size."""

class TooManyHandles(Error):
    """Every participant entry of the queue is held by a live handle."""

class Message:
    """A message lent in place by `Queue.recv_in_place`; released when its `with` block ends."""

    @property
    def view(self) -> memoryview:
        """A read-only view of the slot (no copy); using it after the hold ends raises ValueError."""
    @property
    def deliveries(self) -> int:
        """How many times a consumer has claimed this message, this delivery included."""
    @property
    def id(self) -> int:
        """The message's id, the same on every delivery."""
    @property
    def released(self) -> bool:
        """Whether the hold has ended."""
    def ack(self) -> None:
        """Acknowledges the message; raises `Expired` if its visibility timeout passed."""
    def extend(self, seconds: float) -> None:
        """Keeps the message for `seconds` more from now."""
    def release(self) -> None:
        """Ends the hold without reporting `Expired`."""
    def __bytes__(self) -> bytes: ...
    def __len__(self) -> int: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class Reservation:
    """A slot reserved by `Queue.reserve`: fill `view`, then `commit(n)`."""

    @property
    def view(self) -> memoryview:
        """A writable view of the slot (`max_message_size` bytes)."""
    def commit(self, n: int) -> None:
        """Publishes the first `n` bytes written as one message."""
    def cancel(self) -> None:
        """Gives the slot back without sending."""
    def __len__(self) -> int: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class Queue:
    """A handle on a queue file shared by processes."""

    @staticmethod
    def create(
        path: _Path,
        capacity: int,
        max_message_size: int,
        *,
        mode: int = 0o600,
        visibility_timeout: Optional[float] = None,
        max_deliveries: Optional[int] = None,
        dead_letter: Optional[_Path] = None,
        on_consumer_death: Literal["redeliver", "drop"] = "redeliver",
    ) -> "Queue":
        """Creates a queue file at `path` and opens it."""
    @staticmethod
    def open(path: _Path) -> "Queue":
        """Opens an existing queue file."""
    @staticmethod
    def open_or_create(
        path: _Path,
        capacity: int,
        max_message_size: int,
        *,
        mode: int = 0o600,
        visibility_timeout: Optional[float] = None,
        max_deliveries: Optional[int] = None,
        dead_letter: Optional[_Path] = None,
        on_consumer_death: Literal["redeliver", "drop"] = "redeliver",
    ) -> "Queue":
        """Opens the queue at `path`, creating it if no file is there."""
    @staticmethod
    def inspect(path: _Path) -> dict[str, Any]:
        """Statistics read from the file without opening a handle."""
    @staticmethod
    def unlink(path: _Path) -> None:
        """Removes the queue file."""
    @property
    def path(self) -> str:
        """The path the queue was opened with."""
    @property
    def capacity(self) -> int:
        """Number of slots."""
    @property
    def max_message_size(self) -> int:
        """Largest message, in bytes."""
    @property
    def closed(self) -> bool:
        """Whether the queue is closed."""
    def send(self, data: Buffer, timeout: Optional[float] = None) -> None:
        """Sends `data`, waiting while the queue is full."""
    def try_send(self, data: Buffer) -> None:
        """Sends `data` if there is room now, else raises `Full`."""
    def recv(self, timeout: Optional[float] = None) -> bytes:
        """Receives the next message, waiting while the queue is empty."""
    def try_recv(self) -> bytes:
        """Receives the next message if there is one now, else raises `Empty`."""
    def send_batch(self, messages: Iterable[Buffer]) -> int:
        """Sends every message, waiting for room as needed; returns how many."""
    def recv_batch(self, max: int, timeout: Optional[float] = None) -> List[bytes]:
        """Receives up to `max` messages, waiting while the queue is empty."""
    def recv_in_place(self, timeout: Optional[float] = None) -> Message:
        """Claims the next message and lends it in place."""
    def reserve(self, timeout: Optional[float] = None) -> Reservation:
        """Reserves a slot to write a message in place."""
    async def recv_async(self) -> bytes:
        """Awaitable `recv`; cancelling it loses no message."""
    async def send_async(self, data: Buffer) -> None:
        """Awaitable `send`; cancelling it sends nothing."""
    async def recv_in_place_async(self) -> Message:
        """Awaitable `recv_in_place`."""
    def send_obj(self, obj: Any, timeout: Optional[float] = None) -> None:
        """Sends `pickle.dumps(obj)`."""
    def recv_obj(self, timeout: Optional[float] = None) -> Any:
        """Receives a message and unpickles it (trusted senders only)."""
    def close(self) -> bool:
        """Closes the queue for every process."""
    def release(self) -> None:
        """Gives this handle's participant entry back."""
    def stats(self) -> dict[str, Any]:
        """A snapshot of the queue's configuration and counters."""
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[bytes]: ...
    def __next__(self) -> bytes: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class Topic:
    """A topic file: publishes fan out to one queue per subscription."""

    @staticmethod
    def create(path: _Path, max_message_size: int, *, mode: int = 0o600) -> "Topic":
        """Creates a topic file."""
    @staticmethod
    def open(path: _Path) -> "Topic":
        """Opens an existing topic file."""
    @staticmethod
    def unlink(path: _Path) -> None:
        """Removes the topic file."""
    @property
    def max_message_size(self) -> int:
        """Largest message the topic accepts."""
    def subscribe(
        self,
        queue_path: _Path,
        capacity: int,
        max_message_size: int,
        when_full: Literal["block", "drop"] = "block",
        prefix: Optional[Buffer] = None,
    ) -> None:
        """Subscribes the queue at `queue_path` (created if absent)."""
    def unsubscribe(self, queue_path: _Path) -> None:
        """Removes a subscription (the queue stays)."""
    def publish(self, data: Buffer, timeout: Optional[float] = None) -> None:
        """Publishes `data` to every subscription."""
    def try_publish(self, data: Buffer) -> None:
        """Publishes `data` if every blocking subscription has room now, else raises `Full`."""
    def subscriptions(self) -> List[str]:
        """The subscriptions' queue paths."""
    def release(self) -> None:
        """Gives the handle back."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
