"""crmcore's segmentation benchmarks: crmcore against pandas, polars, DuckDB and plain SQL.

Run ``python -m benchmarks --size S`` (or ``nox -s bench``); see ``docs/benchmarks.md``.
"""
