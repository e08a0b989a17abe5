"""The SQLAlchemy adapter: crmcore's ports on SQLite, PostgreSQL and MariaDB/MySQL.

Needs the ``[sqlalchemy]`` extra (plus ``[postgres]`` or ``[mysql]`` for those drivers)::

    from crmcore.adapters.sqlalchemy import SqlStore

    store = SqlStore.from_url("sqlite:///crm.db", create_schema=True)

See ``docs/embedding.md`` for sharing a database (and a ``MetaData``) with a host application
and for running the bundled Alembic migrations.
"""

from crmcore.adapters.sqlalchemy._errors import DriverError
from crmcore.adapters.sqlalchemy._grants import audit_append_only_grants
from crmcore.adapters.sqlalchemy._migrate import (
    BRANCH_LABEL,
    MIGRATIONS_DIR,
    alembic_config,
    upgrade,
)
from crmcore.adapters.sqlalchemy._rotation import RotationReport, rotate_keys
from crmcore.adapters.sqlalchemy._store import (
    SqlNumberAllocator,
    SqlStore,
    SqlUnitOfWork,
    configure_sqlite_engine,
)
from crmcore.adapters.sqlalchemy._tables import NAMING_CONVENTION, CrmTables, build_tables
from crmcore.adapters.sqlalchemy._types import UtcDateTime

__all__ = [
    "BRANCH_LABEL",
    "MIGRATIONS_DIR",
    "NAMING_CONVENTION",
    "CrmTables",
    "DriverError",
    "RotationReport",
    "SqlNumberAllocator",
    "SqlStore",
    "SqlUnitOfWork",
    "UtcDateTime",
    "alembic_config",
    "audit_append_only_grants",
    "build_tables",
    "configure_sqlite_engine",
    "rotate_keys",
    "upgrade",
]
