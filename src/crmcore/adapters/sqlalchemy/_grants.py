"""The PostgreSQL privileges of an application role under which the audit log is append-only.

The role may read and write crmcore's tables as every use case needs, but on the audit log
it may only ``INSERT`` and ``SELECT``: ``UPDATE``, ``DELETE`` and ``TRUNCATE`` are revoked,
so not even the application (or an attacker holding its connection) can rewrite history.
crmcore never needs them there: entries are only appended and erasure leaves them alone.
The schema's owner (who runs the migrations) keeps every privilege.
"""

from __future__ import annotations

import re
from typing import Final

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql

from crmcore.adapters.sqlalchemy._tables import CrmTables
from crmcore.errors import ConfigurationError

__all__ = ["audit_append_only_grants"]

_ROLE: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_QUOTE: Final = postgresql.dialect().identifier_preparer  # type: ignore[no-untyped-call]


def _name(table: Table) -> str:
    return _QUOTE.format_table(table)


def audit_append_only_grants(tables: CrmTables, role: str) -> list[str]:
    """The ``GRANT``/``REVOKE`` statements that make ``role`` crmcore's application role on
    PostgreSQL with an append-only audit log. Run them as the owner of crmcore's tables.

    Args:
        tables: the store's tables (``store.tables``: prefix and schema are taken from it).
        role: an existing role (lower-case letters, digits and ``_``).

    Returns:
        the statements, in order.

    Raises:
        ConfigurationError: ``role`` is not a plain lower-case identifier.
    """
    if not isinstance(role, str) or not _ROLE.fullmatch(role):
        raise ConfigurationError(
            f"role must be a lower-case identifier (letters, digits, _), got {role!r}"
        )
    who = _QUOTE.quote(role)
    audit = tables.audit_log
    others = ", ".join(_name(t) for t in tables.all if t is not audit)
    schema = _QUOTE.quote_schema(tables.schema) if tables.schema else "public"
    sequence = _QUOTE.quote(f"{audit.name}_seq_seq")
    if tables.schema:
        sequence = f"{_QUOTE.quote_schema(tables.schema)}.{sequence}"
    log = _name(audit)
    return [
        f"GRANT USAGE ON SCHEMA {schema} TO {who}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {others} TO {who}",
        f"GRANT SELECT, INSERT ON TABLE {log} TO {who}",
        f"GRANT USAGE ON SEQUENCE {sequence} TO {who}",
        f"REVOKE UPDATE, DELETE, TRUNCATE ON TABLE {log} FROM {who}",
    ]
