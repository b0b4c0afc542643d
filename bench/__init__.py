"""Benchmarks (scripts that print ratios measured in one run) and the pieces tests import from them."""
