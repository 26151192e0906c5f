"""Honest measurement: MACs from real token counts, throughput/latency, accuracy."""

from vitprune.measure.macs import MacsReport, macs

__all__ = ["MacsReport", "macs"]
