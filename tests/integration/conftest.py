"""Integration tests need optional extras: modules whose extra is missing are not collected.

``nox -s tests_minimal`` installs only ``crmcore[testing]``; there the SQL and CLI modules
below are left out instead of failing at import (``test_extras.py`` reports each as a skip).
Under ``CI=true``, outside that session, ``test_extras.py`` fails instead: a CI run with the
full extras never silently drops a module.
"""

from __future__ import annotations

import importlib.util

# Test modules (glob, relative to this directory) -> the import names they need at import time.
NEEDS: dict[str, tuple[str, ...]] = {
    "test_sql_*.py": ("sqlalchemy", "alembic"),
    "test_sql_errors.py": ("pymysql",),
    "test_sql_encryption.py": ("cryptography", "pyarrow"),
    "test_crypto_cipher.py": ("cryptography",),
    "test_bench_encryption.py": ("cryptography", "sqlalchemy", "psycopg"),
    "test_cli_keys.py": ("click", "rich", "sqlalchemy", "alembic", "cryptography"),
    "test_analytics_sql.py": ("sqlalchemy",),
    "test_cli*.py": ("click", "rich", "sqlalchemy", "alembic", "psycopg"),
    "test_error_privacy.py": ("sqlalchemy", "alembic", "pymysql", "psycopg"),
    "test_edge_inputs.py": ("click", "rich", "sqlalchemy", "alembic"),
    "test_audit.py": ("sqlalchemy", "alembic", "pyarrow"),
    "test_access_policy.py": ("sqlalchemy", "alembic"),
    "test_cli_predict.py": ("scipy",),
    "test_subject_export.py": ("sqlalchemy", "alembic", "pymysql", "psycopg"),
    "test_export_coverage.py": ("sqlalchemy",),
    "test_retention.py": ("sqlalchemy", "alembic", "pymysql", "psycopg"),
    "test_privacy_erasure.py": ("sqlalchemy", "alembic", "cryptography", "pymysql", "psycopg"),
}


def missing(modules: tuple[str, ...]) -> list[str]:
    return [name for name in modules if importlib.util.find_spec(name) is None]


collect_ignore_glob = [pattern for pattern, modules in NEEDS.items() if missing(modules)]
