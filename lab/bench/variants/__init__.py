"""The ways of talking to the database that the workloads compare, one module each.

Nothing is imported here: the PostgreSQL variants need drivers (asyncpg, psycopg) that
only the `bench` extra installs, and the SQLite workloads must run without them.
"""
