"""Watching pgqueue run: `pgqueue top` (a live terminal view over the DBA views of
migrations_sql/0003_dba_surface.sql) and the worker's Prometheus metrics endpoint.

Nothing below this package imports it; the CLI loads it lazily, so `rich` and
`prometheus_client` are imported only by the commands that use them.
"""
