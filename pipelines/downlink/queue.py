"""The spacecraft's downlink queue: alerts first, then thumbnails, then raw data; nothing is lost.

Why acknowledgements: a contact ends, a frame is corrupted, the ground store is briefly down. An
item therefore stays queued until the ground acknowledges it (``ack``), and everything sent but
not acknowledged is sent again at the next opportunity. Storage sits behind :class:`QueueStore` so
a SQLite backend (a later issue) can replace the in-memory one without touching the logic.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from pipelines.errors import DownlinkError

log = logging.getLogger(__name__)


class Priority(IntEnum):
    """Lower value leaves first."""

    ALERT = 0
    THUMBNAIL = 1
    RAW = 2


@dataclass(slots=True)
class QueueItem:
    """One thing to downlink. ``payload`` holds packet bytes; raw scenes may be size-only (None).

    ``divisible`` items (raw files) can be sent in chunks across contacts; ``confirmed`` counts
    the bytes the ground has confirmed, so a resumed transfer restarts there (CFDP-like).
    """

    item_id: str
    priority: Priority
    nbytes: int
    created_s: float
    payload: bytes | None = None
    divisible: bool = False
    confirmed: int = 0
    attempts: int = 0
    order: int = 0

    def __post_init__(self) -> None:
        if self.nbytes <= 0:
            raise DownlinkError(f"queue item {self.item_id!r}: size must be > 0, got {self.nbytes}")
        if self.payload is not None and len(self.payload) != self.nbytes:
            raise DownlinkError(f"queue item {self.item_id!r}: payload is {len(self.payload)} B, nbytes {self.nbytes}")

    @property
    def remaining(self) -> int:
        return self.nbytes - self.confirmed


@dataclass(frozen=True, slots=True)
class Transfer:
    """What one pass sends of one item: ``nbytes`` from ``offset`` (``data`` when the item has a payload)."""

    item_id: str
    priority: Priority
    offset: int
    nbytes: int
    data: bytes | None
    last: bool


class QueueStore(Protocol):
    """Where queue items live. In-memory now; a SQLite store implements the same five methods."""

    def put(self, item: QueueItem) -> None: ...
    def get(self, item_id: str) -> QueueItem | None: ...
    def update(self, item: QueueItem) -> None: ...
    def delete(self, item_ids: Iterable[str]) -> list[QueueItem]: ...
    def ordered(self) -> list[QueueItem]: ...
    def count(self) -> int: ...


class MemoryQueueStore:
    """Dict-backed :class:`QueueStore`."""

    def __init__(self) -> None:
        self._items: dict[str, QueueItem] = {}

    def put(self, item: QueueItem) -> None:
        self._items[item.item_id] = item

    def get(self, item_id: str) -> QueueItem | None:
        return self._items.get(item_id)

    def update(self, item: QueueItem) -> None:
        self._items[item.item_id] = item

    def delete(self, item_ids: Iterable[str]) -> list[QueueItem]:
        return [it for i in item_ids if (it := self._items.pop(i, None)) is not None]

    def count(self) -> int:
        return len(self._items)

    def ordered(self) -> list[QueueItem]:
        """Priority class, then first in first out."""
        return sorted(self._items.values(), key=lambda it: (it.priority, it.created_s, it.order))


class DownlinkQueue:
    """Priority queue with explicit acknowledgement and retransmission of whatever is not acked."""

    def __init__(self, store: QueueStore | None = None) -> None:
        self.store: QueueStore = store if store is not None else MemoryQueueStore()
        self._order = itertools.count()
        self.acked_bytes = 0

    def enqueue(self, item: QueueItem) -> None:
        """Add an item; re-adding a queued id is an error (it would be sent twice)."""
        if self.store.get(item.item_id) is not None:
            raise DownlinkError(f"item {item.item_id!r} is already queued")
        item.order = next(self._order)
        self.store.put(item)

    def __len__(self) -> int:
        return self.store.count()

    def pending(self, priority: Priority | None = None) -> list[QueueItem]:
        return [it for it in self.store.ordered() if priority is None or it.priority == priority]

    def pending_bytes(self, priority: Priority | None = None) -> int:
        return sum(it.remaining for it in self.pending(priority))

    def plan(self, budget_bytes: int, exclude: Iterable[str] = (), now_s: float | None = None,
             max_priority: Priority = Priority.RAW) -> list[Transfer]:
        """What to send with ``budget_bytes``: strict priority order, first fit.

        Whole items that do not fit are skipped (a smaller item behind may still go); divisible
        items are chunked into whatever budget is left. ``exclude``: ids already in flight this
        pass. ``now_s``: items created later are not yet available. ``max_priority``: lowest class
        this link may carry (a kbps relay should not start on raw scenes). Nothing is removed here.
        """
        if budget_bytes < 0:
            raise DownlinkError(f"budget must be >= 0, got {budget_bytes}")
        skip = set(exclude)
        out: list[Transfer] = []
        left = budget_bytes
        for it in self.store.ordered():
            if left <= 0:
                break
            if it.priority > max_priority:
                break
            if it.item_id in skip or (now_s is not None and it.created_s > now_s):
                continue
            if it.divisible:
                n = min(left, it.remaining)
            elif it.nbytes <= left:
                n = it.nbytes
            else:
                continue
            data = None if it.payload is None else it.payload[it.confirmed:it.confirmed + n]
            out.append(Transfer(it.item_id, it.priority, it.confirmed, n, data, it.confirmed + n == it.nbytes))
            it.attempts += 1
            self.store.update(it)
            left -= n
        return out

    def confirm(self, item_id: str, upto: int) -> None:
        """The ground holds bytes [0, upto) of a divisible item: a resumed transfer starts there."""
        it = self.store.get(item_id)
        if it is None:
            raise DownlinkError(f"item {item_id!r} is not queued")
        if not (0 <= upto <= it.nbytes):
            raise DownlinkError(f"confirm {item_id!r}: offset {upto} outside [0, {it.nbytes}]")
        it.confirmed = max(it.confirmed, upto)
        self.store.update(it)

    def ack(self, item_ids: Iterable[str]) -> list[QueueItem]:
        """The ground has these items for good: drop them. Unknown ids (duplicate acks) are ignored."""
        gone = self.store.delete(list(item_ids))
        self.acked_bytes += sum(it.nbytes for it in gone)
        return gone
