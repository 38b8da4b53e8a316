"""Benchmarks that show when async database access pays off, and when it does not.

Run with `python -m lab.bench` or `python -m lab.bench` (`--quick` for a smoke run). Every workload
runs each variant interleaved (order rotated every repetition), checks the ledger after
every run, and reports medians, min-max and paired ratios to a blocking reference.
"""
