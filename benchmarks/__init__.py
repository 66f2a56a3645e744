"""Benchmarks: each bench_<name>.py writes docs/bench/<name>.md; bench_all joins them."""
