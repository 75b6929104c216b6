"""Downlink: the acknowledged priority queue, the channel model, and a pass runner."""

from pipelines.downlink.link import Channel, GroundEndpoint, PassReport, ack_id, enqueue_alerts, run_pass
from pipelines.downlink.queue import DownlinkQueue, MemoryQueueStore, Priority, QueueItem, QueueStore, Transfer

__all__ = ["Channel", "DownlinkQueue", "GroundEndpoint", "MemoryQueueStore", "PassReport", "Priority", "QueueItem",
           "QueueStore", "Transfer", "ack_id", "enqueue_alerts", "run_pass"]
