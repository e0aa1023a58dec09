"""The in-process tier: a small LRU of encoded results with a time-to-live, in front of Redis.

Synchronous and lock-free on purpose: it is only touched from the event loop, and each call is a dict operation.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class MemoryCache:
    """At most `max_items` entries (0 disables the tier), each living `ttl_s` seconds (<= 0: no time limit)."""

    def __init__(self, max_items: int, ttl_s: float, clock: Callable[[], float] = time.monotonic):
        self.max_items = max(0, int(max_items))
        self.ttl_s = ttl_s
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.max_items > 0

    def get(self, key: str) -> bytes | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if self._clock() >= expires_at:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return value

    def set(self, key: str, value: bytes) -> None:
        if not self.enabled:
            return
        expires_at = self._clock() + self.ttl_s if self.ttl_s > 0 else float("inf")
        self._items[key] = (expires_at, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def delete(self, key: str) -> None:
        self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
