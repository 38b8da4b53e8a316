"""Reliability tooling over the services: the soak (`make soak`) and mutation testing."""
