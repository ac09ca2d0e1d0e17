"""Benchmarks for Bulk Transcribe: throughput against the bare model, scheduling against the lower bound,
download overlap, and cost at scale. Run `make bench` (or `make bench-quick`); see benchmarks/README.md."""
