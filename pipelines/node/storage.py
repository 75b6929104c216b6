"""Onboard mass memory: raw scenes stay until the ground has them, or the retention policy drops them.

Why a policy at all: a SAR smallsat collects faster than it can downlink raw data on bad days, so
something must give; the policy makes what gives explicit and testable (oldest first, or lowest
priority first with age breaking ties).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pipelines.errors import StorageError
from pipelines.node.config import StorageConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredItem:
    """One stored product (a raw scene, usually). Higher ``priority`` = more worth keeping."""

    item_id: str
    nbytes: int
    created_s: float
    priority: int = 0


class OnboardStorage:
    """Capacity-bounded store with an eviction policy; ``remove`` after the ground acknowledges."""

    def __init__(self, cfg: StorageConfig) -> None:
        self.cfg = cfg
        self._items: dict[str, StoredItem] = {}
        self._used = 0
        self.dropped: list[StoredItem] = []

    @property
    def used_bytes(self) -> int:
        return self._used

    @property
    def free_bytes(self) -> int:
        return self.cfg.capacity_bytes - self._used

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def items(self) -> list[StoredItem]:
        return list(self._items.values())

    def _victim_order(self, candidates: list[StoredItem]) -> list[StoredItem]:
        if self.cfg.retention == "oldest":
            return sorted(candidates, key=lambda i: (i.created_s, i.item_id))
        return sorted(candidates, key=lambda i: (i.priority, i.created_s, i.item_id))

    def add(self, item: StoredItem) -> list[StoredItem]:
        """Store ``item``, dropping per policy until it fits; returns what was dropped.

        Under "lowest_priority" the new item itself is a candidate: a low-priority scene does not
        push out a more important one.
        """
        if item.nbytes < 0:
            raise StorageError(f"item {item.item_id!r}: negative size {item.nbytes}")
        if item.item_id in self._items:
            raise StorageError(f"item {item.item_id!r} already stored")
        if item.nbytes > self.cfg.capacity_bytes:
            raise StorageError(f"item {item.item_id!r} ({item.nbytes} B) exceeds capacity {self.cfg.capacity_bytes} B")
        dropped: list[StoredItem] = []
        need = self._used + item.nbytes - self.cfg.capacity_bytes
        if need > 0:
            for victim in self._victim_order([*self._items.values(), item]):
                if need <= 0:
                    break
                dropped.append(victim)
                need -= victim.nbytes
        for v in dropped:
            if v is not item:
                self._remove(v.item_id)
            log.info("storage full: dropped %s (%d B) by policy %s", v.item_id, v.nbytes, self.cfg.retention)
        if item not in dropped:
            self._items[item.item_id] = item
            self._used += item.nbytes
        self.dropped.extend(dropped)
        return dropped

    def _remove(self, item_id: str) -> StoredItem:
        it = self._items.pop(item_id)
        self._used -= it.nbytes
        return it

    def remove(self, item_id: str) -> StoredItem:
        """Free an item the ground has acknowledged."""
        if item_id not in self._items:
            raise StorageError(f"item {item_id!r} is not stored")
        return self._remove(item_id)
