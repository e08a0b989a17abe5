"""The audit trail's entry: who did what to which customer's data, when, and whether allowed.

An :class:`AuditEntry` cannot hold personal data by construction: every text in it is either
a member of a closed set (:class:`AuditAction`, :class:`AuditEntity`, :class:`AuditOutcome`)
or a short identifier checked against a pattern that admits no spaces, ``@`` or ``+`` (so
neither a name, an e-mail address nor a phone number fits), and changed fields are recorded
by *name*, never by value. The customer is named by its CRM number, which is a pseudonym:
after erasure nothing links it to a person any more.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import uuid
from typing import Final

import attrs

from crmcore.domain import _checks
from crmcore.domain.numbers import CrmNumber
from crmcore.errors import ValidationError

__all__ = [
    "DEFAULT_ACTOR",
    "AuditAction",
    "AuditEntity",
    "AuditEntry",
    "AuditOutcome",
    "check_actor",
    "check_limit",
]

DEFAULT_ACTOR: Final = "system"
"""The actor of use cases run without one (``Crm(store)`` without ``actor=``)."""

_ACTOR = re.compile(r"[A-Za-z][A-Za-z0-9_.:/-]{0,63}")
_FIELD = re.compile(r"[a-z_][a-z0-9_]{0,63}")


class AuditAction(enum.Enum):
    """What a use case did. One verb per use case (bulk ones have their own verb, so a
    query for ``register`` does not mix single registrations with imports)."""

    REGISTER = "register"
    REGISTER_MANY = "register_many"
    UPDATE = "update"
    CHANGE_STAGE = "change_stage"
    CONSENT = "consent"
    ERASE = "erase"
    MERGE = "merge"
    RECORD_INTERACTION = "record_interaction"
    RECORD_INTERACTIONS = "record_interactions"
    RECORD_TRANSACTION = "record_transaction"
    RECORD_TRANSACTIONS = "record_transactions"
    IMPORT_CUSTOMERS = "import_customers"
    IMPORT_INTERACTIONS = "import_interactions"
    IMPORT_TRANSACTIONS = "import_transactions"
    READ = "read"
    """One customer looked up by number or import key."""
    FIND = "find"
    """Customers looked up by e-mail address or phone number."""
    VIEW_360 = "view_360"
    EXPORT = "export"
    RETENTION = "retention"
    DEFINE_SEGMENT = "define_segment"
    DELETE_SEGMENT = "delete_segment"
    RUN_SEGMENT = "run_segment"
    RECLASSIFY = "reclassify"
    REFRESH = "refresh"
    """One customer's metrics, scores and segment matches recomputed (profiling)."""
    SNAPSHOT = "snapshot"
    """Every customer's metrics read (profiling)."""
    SCORE = "score"
    """Every customer RFM-scored (profiling)."""
    EVALUATE = "evaluate"
    """A rule evaluated over every customer without saving the result."""
    PREDICT = "predict"
    """Every customer's purchases summarised for a predictive model (profiling)."""

    @property
    def is_read(self) -> bool:
        """Whether the action only discloses data (an access policy may mask it)."""
        return self in _READS


_READS: Final = frozenset(
    {AuditAction.READ, AuditAction.FIND, AuditAction.VIEW_360, AuditAction.EXPORT}
)


class AuditEntity(enum.Enum):
    """The kind of record an action was about."""

    CUSTOMER = "customer"
    INTERACTION = "interaction"
    TRANSACTION = "transaction"
    SEGMENT = "segment"


class AuditOutcome(enum.Enum):
    """What the access policy decided: the data was disclosed in full, masked, or refused."""

    ALLOWED = "allowed"
    MASKED = "masked"
    DENIED = "denied"


def check_actor(field: str, value: object) -> str:
    """Return ``value`` if it is an actor id: a letter, then up to 63 letters, digits or
    ``_ . : / -`` (``"user:42"``, ``"job:nightly-import"``).

    The pattern keeps personal data out of the audit trail: a display name (spaces), an
    e-mail address (``@``) or a phone number (``+``) is refused.

    Raises:
        ValidationError: anything else.
    """
    if not isinstance(value, str) or not _ACTOR.fullmatch(value):
        raise ValidationError(
            field,
            value,
            "must be an actor id: a letter, then at most 63 letters, digits or _ . : / - "
            "(a pseudonymous id such as 'user:42', never a name or an address)",
        )
    return value


def check_limit(limit: object) -> int | None:
    """``limit`` of an audit query if it is ``None`` or a non-negative integer.

    Raises:
        ValidationError: anything else.
    """
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValidationError("limit", limit, "must be a non-negative integer or None")
    return limit


def _field_names(field: str, value: object) -> tuple[str, ...]:
    names = _checks.tuple_of(field, value, _field_name)
    return tuple(sorted(set(names)))


def _field_name(field: str, value: object) -> str:
    if not isinstance(value, str) or not _FIELD.fullmatch(value):
        raise ValidationError(field, value, "must be a field name (lower-case identifier)")
    return value


def _number(field: str, value: object) -> CrmNumber | None:
    return None if value is None else _checks.instance_of(field, CrmNumber, value)


def _rows(field: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(field, value, "must be a non-negative integer or None")
    return value


@attrs.frozen(field_transformer=_checks.install_converters)
class AuditEntry:
    """One line of the audit trail.

    Attributes:
        id: unique id of the entry.
        at: when (aware, UTC).
        actor: who (an actor id, see :func:`check_actor`).
        action: what use case.
        entity: what kind of record.
        customer: whose data (``None`` for bulk use cases and segment definitions).
        fields: names of the changed fields of an update (sorted, never values).
        outcome: what the access policy decided.
        rows: how many rows a bulk use case handled (``None`` for single-record ones).
    """

    id: uuid.UUID = attrs.field(metadata=_checks.converts(_checks.uuid_value))
    at: dt.datetime = attrs.field(metadata=_checks.converts(_checks.aware_utc))
    actor: str = attrs.field(metadata=_checks.converts(check_actor))
    action: AuditAction = attrs.field(
        metadata=_checks.converts(lambda f, v: _checks.member(f, AuditAction, v))
    )
    entity: AuditEntity = attrs.field(
        metadata=_checks.converts(lambda f, v: _checks.member(f, AuditEntity, v))
    )
    customer: CrmNumber | None = attrs.field(default=None, metadata=_checks.converts(_number))
    fields: tuple[str, ...] = attrs.field(default=(), metadata=_checks.converts(_field_names))
    outcome: AuditOutcome = attrs.field(
        default=AuditOutcome.ALLOWED,
        metadata=_checks.converts(lambda f, v: _checks.member(f, AuditOutcome, v)),
    )
    rows: int | None = attrs.field(default=None, metadata=_checks.converts(_rows))
