"""Throw-away servers that the tests and the benchmarks start and stop by pid."""
