"""crmcore's tables, built with SQLAlchemy Core on a ``MetaData`` the host may supply."""

from __future__ import annotations

import re
from typing import Final

import attrs
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.sql.naming import conv

from crmcore.adapters.sqlalchemy._types import AUDIT_SEQUENCE, LONG_TEXT, RECORD_ID, UtcDateTime
from crmcore.errors import ConfigurationError

__all__ = ["NAMING_CONVENTION", "CrmTables", "build_tables"]

NAMING_CONVENTION: Final = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""The convention of a ``MetaData`` crmcore creates itself. crmcore names every one of its
constraints and indexes explicitly too, so a host's ``MetaData`` without a convention (or with
a different one) still gets stable, Alembic-friendly names."""

MAX_IDENTIFIER: Final = 63
_PREFIX = re.compile(r"[a-z][a-z0-9_]{0,19}|")
_NUMBER = String(32)
_CODE = String(32)
_KEY_ID = String(16)


@attrs.frozen
class CrmTables:
    """The ``Table`` objects of one crmcore schema (analytics push SQL down onto these).

    Attributes:
        metadata: the ``MetaData`` they belong to (the host's, or crmcore's own).
        prefix: the table-name prefix (``"crm_"`` by default).
        schema: the database schema, or ``None`` for the default one.
    """

    metadata: MetaData
    prefix: str
    schema: str | None
    settings: Table
    number_counter: Table
    customers: Table
    customer_emails: Table
    customer_phones: Table
    customer_sealed: Table
    customer_tags: Table
    aggregates: Table
    transactions: Table
    interactions: Table
    consents: Table
    segments: Table
    segment_runs: Table
    segment_members: Table
    audit_log: Table

    @property
    def all(self) -> tuple[Table, ...]:
        """Every table, parents before children (the order ``create_all`` uses)."""
        return (
            self.settings,
            self.number_counter,
            self.customers,
            self.customer_emails,
            self.customer_phones,
            self.customer_sealed,
            self.customer_tags,
            self.aggregates,
            self.transactions,
            self.interactions,
            self.consents,
            self.segments,
            self.segment_runs,
            self.segment_members,
            self.audit_log,
        )


def _name(kind: str, table: str, *parts: str) -> conv:
    name = "_".join((kind, table, *parts))
    if len(name) > MAX_IDENTIFIER:
        raise ConfigurationError(
            f"identifier {name!r} is longer than {MAX_IDENTIFIER} characters; "
            "use a shorter table_prefix"
        )
    return conv(name)


def _pk(table: str, *columns: str) -> PrimaryKeyConstraint:
    return PrimaryKeyConstraint(*columns, name=_name("pk", table))


def _fk(table: str, columns: list[str], target_columns: list[str]) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(columns, target_columns, name=_name("fk", table, "_".join(columns)))


def _uq(table: str, *columns: str) -> UniqueConstraint:
    return UniqueConstraint(*columns, name=_name("uq", table, *columns))


def _ix(table: str, *columns: str) -> Index:
    return Index(_name("ix", table, *columns), *columns)


def build_tables(
    metadata: MetaData | None = None, *, prefix: str = "crm_", schema: str | None = None
) -> CrmTables:
    """Define crmcore's tables on ``metadata`` (a new one with a naming convention if omitted).

    Args:
        metadata: the host's ``MetaData``, so crmcore's tables live beside the host's own
            (and the host's Alembic autogenerate sees them).
        prefix: prepended to every table name: lower-case letters, digits and ``_``, at most
            20 characters (identifiers must stay within 63 characters).
        schema: database schema (PostgreSQL schema / MariaDB database), or ``None``.

    Returns:
        the tables, as a :class:`CrmTables`.

    Raises:
        ConfigurationError: a bad prefix, or tables of that name already in ``metadata``.
    """
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ConfigurationError(
            f"table_prefix must be lower-case letters, digits and '_' (at most 20), got {prefix!r}"
        )
    md = metadata if metadata is not None else MetaData(naming_convention=NAMING_CONVENTION)
    p = prefix

    def fq(name: str) -> str:
        return f"{schema}.{p}{name}" if schema else f"{p}{name}"

    existing = {fq(n) for n in ("settings", "customers")} & set(md.tables)
    if existing:
        raise ConfigurationError(
            f"metadata already holds crmcore tables {sorted(existing)}; reuse the CrmTables "
            "of the first store (store.tables) or pick another table_prefix"
        )

    def table(name: str, *items: Column[object] | object) -> Table:
        return Table(
            f"{p}{name}",
            md,
            *items,  # type: ignore[arg-type]
            schema=schema,
            # Exact, case-sensitive text comparison everywhere, as in the other dialects.
            mysql_charset="utf8mb4",
            mysql_collate="utf8mb4_bin",
        )

    customers_ref = fq("customers")
    settings_t = f"{p}settings"
    settings = table(
        "settings",
        Column("key", String(64), nullable=False),
        Column("value", String(255), nullable=False),
        _pk(settings_t, "key"),
    )
    counter_t = f"{p}number_counter"
    number_counter = table(
        "number_counter",
        Column("name", String(64), nullable=False),
        Column("value", BigInteger, nullable=False),
        _pk(counter_t, "name"),
    )
    cust_t = f"{p}customers"
    customers = table(
        "customers",
        Column("number", _NUMBER, nullable=False),
        Column("erased", Boolean(create_constraint=False), nullable=False),
        Column("given_name", String(200)),
        Column("family_name", String(200)),
        Column("display_name", String(400)),
        Column("gender", _CODE),
        Column("birth_date", Date),
        Column("title", String(100)),
        Column("job_title", String(200)),
        Column("organisation", String(200)),
        Column("preferred_channel", _CODE),
        Column("stage", _CODE),
        Column("owner", String(200)),
        Column("source", String(100)),
        Column("external_id", String(200)),
        Column("addresses", LONG_TEXT),
        Column("attributes", LONG_TEXT),
        Column("stage_history", LONG_TEXT),
        Column("created_at", UtcDateTime),
        Column("updated_at", UtcDateTime),
        Column("version", Integer, nullable=False),
        # Set by retention's anonymisation (migration crmcore_0005_retention).
        Column("anonymised_at", UtcDateTime),
        # Denormalised for analytics pushdown (maintained from the entity on every write).
        Column("created_us", BigInteger),
        Column("country", String(2)),
        Column("birth_year", Integer),
        _pk(cust_t, "number"),
        _uq(cust_t, "source", "external_id"),
    )

    def child(name: str, *items: object) -> Table:
        t = f"{p}{name}"
        return table(
            name,
            Column("customer", _NUMBER, nullable=False),
            *items,
            _fk(t, ["customer"], [f"{customers_ref}.number"]),
        )

    emails_t = f"{p}customer_emails"
    customer_emails = child(
        "customer_emails",
        Column("position", Integer, nullable=False),
        Column("address", String(320), nullable=False),
        Column("lookup_key", String(320), nullable=False),
        Column("label", _CODE, nullable=False),
        # Encrypted stores: the address sealed here, "" in address, and lookup_key holds the
        # blind index (so look-ups stay one indexed equality).
        Column("sealed", LONG_TEXT),
        _pk(emails_t, "customer", "position"),
        _ix(emails_t, "lookup_key"),
    )
    phones_t = f"{p}customer_phones"
    customer_phones = child(
        "customer_phones",
        Column("position", Integer, nullable=False),
        Column("e164", String(20), nullable=False),
        Column("label", _CODE, nullable=False),
        # Encrypted stores: the number sealed here and e164 holds its blind index.
        Column("sealed", LONG_TEXT),
        _pk(phones_t, "customer", "position"),
        _ix(phones_t, "e164"),
    )
    sealed_t = f"{p}customer_sealed"
    customer_sealed = child(
        "customer_sealed",
        # Encryption at rest (docs/privacy-encryption.md): the personal fields of the
        # customer row sealed one by one (a JSON object of field -> ciphertext; those columns
        # of ``customers`` are then NULL), and the data key and index key its values were
        # sealed and indexed under (a rotation finds the rows still under an old key by
        # them; no row: a plaintext customer). A table of its own, so the customers rows
        # the analytics scan stay as narrow as a plaintext store's.
        Column("sealed", LONG_TEXT, nullable=False),
        Column("key_id", _KEY_ID, nullable=False),
        Column("index_key_id", _KEY_ID, nullable=False),
        _pk(sealed_t, "customer"),
    )
    tags_t = f"{p}customer_tags"
    customer_tags = child(
        "customer_tags",
        Column("tag", String(64), nullable=False),
        _pk(tags_t, "customer", "tag"),
        _ix(tags_t, "tag"),
    )
    agg_t = f"{p}aggregates"
    aggregates = child(
        "aggregates",
        Column("purchase_count", BigInteger, nullable=False),
        Column("refund_count", BigInteger, nullable=False),
        Column("purchase_minor", BigInteger, nullable=False),
        Column("refund_minor", BigInteger, nullable=False),
        Column("first_purchase_at", UtcDateTime),
        Column("last_purchase_at", UtcDateTime),
        Column("interaction_count", BigInteger, nullable=False),
        Column("complaint_count", BigInteger, nullable=False),
        Column("last_interaction_at", UtcDateTime),
        # The same instants as integer microseconds since the epoch (exact day arithmetic
        # and comparisons in SQL on every dialect).
        Column("first_purchase_us", BigInteger),
        Column("last_purchase_us", BigInteger),
        Column("last_interaction_us", BigInteger),
        _pk(agg_t, "customer"),
    )
    tx_t = f"{p}transactions"
    transactions = child(
        "transactions",
        Column("id", RECORD_ID, nullable=False),
        Column("occurred_at", UtcDateTime, nullable=False),
        Column("kind", _CODE, nullable=False),
        Column("amount_minor", BigInteger, nullable=False),
        Column("currency", String(3), nullable=False),
        Column("reporting_minor", BigInteger, nullable=False),
        Column("channel", _CODE, nullable=False),
        Column("source", String(100)),
        Column("external_ref", String(200)),
        Column("lines", LONG_TEXT, nullable=False),
        Column("occurred_us", BigInteger, nullable=False),
        _pk(tx_t, "id"),
        _uq(tx_t, "source", "external_ref"),
        _ix(tx_t, "customer", "occurred_at"),
        _ix(tx_t, "occurred_us"),
    )
    ix_t = f"{p}interactions"
    interactions = child(
        "interactions",
        Column("id", RECORD_ID, nullable=False),
        Column("occurred_at", UtcDateTime, nullable=False),
        Column("channel", _CODE, nullable=False),
        Column("direction", _CODE, nullable=False),
        Column("kind", _CODE, nullable=False),
        Column("subject", String(500)),
        Column("notes", LONG_TEXT),
        Column("outcome", String(500)),
        Column("agent", String(200)),
        Column("follow_up_due", UtcDateTime),
        Column("source", String(100)),
        Column("external_ref", String(200)),
        Column("occurred_us", BigInteger, nullable=False),
        # Encrypted stores: subject, notes and outcome sealed here (those columns NULL).
        Column("sealed", LONG_TEXT),
        Column("key_id", _KEY_ID),
        _pk(ix_t, "id"),
        _uq(ix_t, "source", "external_ref"),
        _ix(ix_t, "customer", "occurred_at"),
        _ix(ix_t, "occurred_us"),
    )
    consents_t = f"{p}consents"
    consents = child(
        "consents",
        Column("id", RECORD_ID, nullable=False),
        # Append order within the customer's ledger: breaks ties on "at" (the later wins).
        Column("seq", Integer, nullable=False),
        Column("purpose", String(64), nullable=False),
        Column("channel", _CODE),
        Column("decision", _CODE, nullable=False),
        Column("lawful_basis", _CODE, nullable=False),
        Column("text_hash", String(128)),
        Column("source", String(200)),
        Column("evidence", String(500)),
        Column("actor", String(200), nullable=False),
        Column("at", UtcDateTime, nullable=False),
        Column("expires_at", UtcDateTime),
        # The same instants as integer microseconds (the consented() rule compares them).
        Column("at_us", BigInteger, nullable=False),
        Column("expires_us", BigInteger),
        _pk(consents_t, "id"),
        _uq(consents_t, "customer", "seq"),
        _ix(consents_t, "customer", "purpose"),
    )
    seg_t = f"{p}segments"
    segments = table(
        "segments",
        Column("name", String(100), nullable=False),
        Column("rule", Text, nullable=False),
        Column("description", Text, nullable=False),
        # The consent a member must have (an audience): NULL purpose, none required.
        Column("consent_purpose", String(64)),
        Column("consent_channel", _CODE),
        _pk(seg_t, "name"),
    )
    runs_t = f"{p}segment_runs"
    segments_ref = fq("segments")
    segment_runs = table(
        "segment_runs",
        Column("segment", String(100), nullable=False),
        Column("as_of", UtcDateTime, nullable=False),
        _pk(runs_t, "segment", "as_of"),
        _fk(runs_t, ["segment"], [f"{segments_ref}.name"]),
    )
    members_t = f"{p}segment_members"
    runs_ref = fq("segment_runs")
    segment_members = table(
        "segment_members",
        Column("segment", String(100), nullable=False),
        Column("as_of", UtcDateTime, nullable=False),
        Column("customer", _NUMBER, nullable=False),
        _pk(members_t, "segment", "as_of", "customer"),
        _fk(members_t, ["segment", "as_of"], [f"{runs_ref}.segment", f"{runs_ref}.as_of"]),
        _ix(members_t, "customer"),
    )
    audit_t = f"{p}audit_log"
    # No foreign key to customers: an entry may name a number that never existed (a denied
    # read of it), and entries outlive erasure by design.
    audit_log = table(
        "audit_log",
        Column("seq", AUDIT_SEQUENCE, nullable=False, autoincrement=True),
        Column("id", RECORD_ID, nullable=False),
        Column("at", UtcDateTime, nullable=False),
        Column("actor", String(64), nullable=False),
        Column("action", _CODE, nullable=False),
        Column("entity", _CODE, nullable=False),
        Column("customer", _NUMBER),
        Column("fields", LONG_TEXT, nullable=False),
        Column("outcome", _CODE, nullable=False),
        Column("rows", BigInteger),
        _pk(audit_t, "seq"),
        _uq(audit_t, "id"),
        _ix(audit_t, "customer", "at"),
        _ix(audit_t, "at"),
    )
    return CrmTables(
        metadata=md,
        prefix=prefix,
        schema=schema,
        settings=settings,
        number_counter=number_counter,
        customers=customers,
        customer_emails=customer_emails,
        customer_phones=customer_phones,
        customer_sealed=customer_sealed,
        customer_tags=customer_tags,
        aggregates=aggregates,
        transactions=transactions,
        interactions=interactions,
        consents=consents,
        segments=segments,
        segment_runs=segment_runs,
        segment_members=segment_members,
        audit_log=audit_log,
    )
