"""A thread-safe LRU cache bounded by the bytes of the arrays it holds (decoded images and
masks of a capture)."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np


class ByteLRU:
    """A thread-safe LRU cache bounded by the bytes of the arrays it holds."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.used = 0
        self._d: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        return None

    def put(self, key, value: np.ndarray | None) -> None:
        size = 0 if value is None else value.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._d:
                return
            self._d[key] = value
            self.used += size
            while self.used > self.max_bytes and self._d:
                _, old = self._d.popitem(last=False)
                self.used -= 0 if old is None else old.nbytes

    def clear(self) -> None:
        with self._lock:
            self._d.clear()
            self.used = 0
