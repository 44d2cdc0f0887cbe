"""Prometheus metrics, one registry per app (no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.inbound = Counter("groundwork_inbound_total", "Inbound events accepted",
                               ["transport", "kind"], registry=r)
        self.processed = Counter("groundwork_processed_total", "Inbound events processed",
                                 ["outcome"], registry=r)
        self.delivered = Counter("groundwork_delivered_total", "Messages handed to a transport",
                                 ["transport", "kind"], registry=r)
        self.failed = Counter("groundwork_failed_total", "Messages that failed for good",
                              ["transport", "reason"], registry=r)
        self.held = Counter("groundwork_held_total",
                            "Messages held or folded by quiet hours, caps, pauses or digests",
                            ["reason"], registry=r)
        self.suppressed = Counter("groundwork_suppressed_total",
                                  "Messages not sent for lack of consent or membership",
                                  ["reason"], registry=r)
        self.retried = Counter("groundwork_retried_total", "Sends retried after an error",
                               ["transport", "error"], registry=r)
        self.queue_depth = Gauge("groundwork_outbox_queue_depth", "Outbox rows waiting",
                                 registry=r)
        self.inbox_depth = Gauge("groundwork_inbox_pending", "Inbox rows waiting", registry=r)
        self.process_seconds = Histogram(
            "groundwork_process_seconds", "From receipt to replies in the outbox",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.send_seconds = Histogram(
            "groundwork_send_seconds", "Time a transport took to send one message",
            ["transport"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
