"""Benchmarks that print timings and ratios measured side by side (never asserted in tests)."""
