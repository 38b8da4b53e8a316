"""Runnable pitfalls of async database access, each shown going wrong and then done the
project's way: `python -m examples.<name>` from the repository root (docs/patterns.md links
each from its row). Beside the app like `lab/`: not installed, and they use only its public
names (tests/test_layers.py); tests/examples runs each one and checks what it prints.
"""
