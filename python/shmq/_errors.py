"""shmq's exceptions (re-exported by ``shmq``)."""

__all__ = [
    "Error",
    "Full",
    "Empty",
    "Closed",
    "Timeout",
    "Expired",
    "Corrupt",
    "Incompatible",
    "MessageTooLarge",
    "TooManyHandles",
]


class Error(Exception):
    """Base of shmq's own exceptions."""

    __module__ = "shmq"


class Full(Error):
    """The queue holds ``capacity`` messages; nothing was sent."""

    __module__ = "shmq"


class Empty(Error):
    """No message is ready; nothing was received."""

    __module__ = "shmq"


class Closed(Error):
    """The queue was closed: no sends are accepted, and every message has been received."""

    __module__ = "shmq"


class Timeout(Error, TimeoutError):
    """The timeout passed before the call could complete; nothing was sent or received."""

    __module__ = "shmq"


class Expired(Error):
    """The message's visibility timeout passed and it was handed out again."""

    __module__ = "shmq"


class Corrupt(Error):
    """The file, or the shared memory, holds something no honest shmq process writes."""

    __module__ = "shmq"


class Incompatible(Error):
    """The file is a queue of another layout version, or made for another platform."""

    __module__ = "shmq"


class MessageTooLarge(Error, ValueError):
    """The message is longer than the queue's maximum message size; nothing was sent."""

    __module__ = "shmq"


class TooManyHandles(Error):
    """Every participant entry of the queue is held by a live handle (the queue is fine)."""

    __module__ = "shmq"
