"""Errors the benchmark reports in one line."""


class BenchError(Exception):
    """A problem to report in one line (exit 1), e.g. an unknown workload name."""
