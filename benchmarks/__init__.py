"""Benchmarks: timings that are measured and reported, never asserted by the test suite."""
