"""The repository's lab: tools that measure and stress-test the app, never installed.

`lab.bench` (the benchmarks), `lab.reliability` (soak, mutation testing), `lab.measure` (the
figures of docs/patterns.md) and `lab.servers` (throw-away servers for tests and benchmarks).
Nothing in the app imports the lab, and the lab uses only the app's public names
(tests/test_layers.py), so a service grown from this repository deletes `lab/` whole.
"""
