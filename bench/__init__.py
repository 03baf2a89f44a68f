"""Benchmarks run on demand (speed, memory, agreement with the oracle); they print ratios and medians."""
