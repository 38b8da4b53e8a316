"""Reliability tooling over the services: the soak load (`make soak`, `python -m reliability`)."""
