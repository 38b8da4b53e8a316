"""`python -m lab.bench scale`: what each request costs as the ledger grows (issue 24).

Ledgers of growing size (bulk-loaded, then verified by the audit), on SQLite and
PostgreSQL: the per-request operations, the audit's rate and memory, and the batched
write path against a baseline source tree (the kept totals' cost).
"""
