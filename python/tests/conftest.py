import os
import uuid

import pytest


@pytest.fixture
def path():
    """A fresh queue path under /dev/shm, removed after the test."""
    p = f"/dev/shm/shmq-pytest-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    made = [p]
    yield p
    for q in made + [p + suffix for suffix in (".dlq", ".topic", ".sub1", ".sub2")]:
        try:
            os.unlink(q)
        except FileNotFoundError:
            pass
