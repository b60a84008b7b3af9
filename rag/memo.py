"""`Memo`: per-text results computed in batches, kept for reuse, safe to share across threads.

Consecutive questions (a chat, an eval run, a server answering several users) retrieve the same
passages again, and the refusal gate, the answerer and the citation check read the same
sentences: their Kiwi analyses and sentence vectors are computed once per process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    """Results kept for at most ``size`` keys, the least recently used dropped first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, keys: Sequence[K], compute: Callable[[list[K]], Sequence[V]]) -> list[V]:
        """The result for each of ``keys``; those not kept are computed in one batch by
        ``compute`` (keys -> their results, in order), outside the lock, so that threads
        asking for other keys do not wait on it."""
        found: dict[K, V] = {}
        with self._lock:
            for key in keys:
                if key in self._items:
                    self._items.move_to_end(key)
                    found[key] = self._items[key]
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if missing:
            found.update(zip(missing, compute(missing), strict=True))
            with self._lock:
                for key in missing:
                    self._items[key] = found[key]
                    self._items.move_to_end(key)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return [found[k] for k in keys]
