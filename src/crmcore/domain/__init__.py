"""The customer domain: entities, value objects, rules and events. Pure: no I/O."""

from crmcore.domain.aggregates import CustomerAggregate
from crmcore.domain.audit import (
    DEFAULT_ACTOR,
    AuditAction,
    AuditEntity,
    AuditEntry,
    AuditOutcome,
    check_actor,
)
from crmcore.domain.contact import ContactLabel, EmailAddress, PhoneNumber, PostalAddress
from crmcore.domain.customer import (
    AttributeValue,
    Consent,
    ConsentPurpose,
    Customer,
    Gender,
    PersonName,
)
from crmcore.domain.events import (
    CustomerErased,
    CustomerRegistered,
    CustomersImported,
    CustomersMerged,
    CustomerUpdated,
    DomainEvent,
    InteractionRecorded,
    InteractionsImported,
    SegmentEntered,
    SegmentExited,
    StageChanged,
    TransactionRecorded,
    TransactionsImported,
)
from crmcore.domain.interaction import Direction, Interaction, InteractionChannel, InteractionKind
from crmcore.domain.lifecycle import TRANSITIONS, LifecycleStage, StageChange, check_transition
from crmcore.domain.money import CURRENCY_EXPONENTS, Money, currency_exponent
from crmcore.domain.numbers import DEFAULT_SCHEME, CheckAlgorithm, CrmNumber, CrmNumberScheme
from crmcore.domain.segment import Segment, SegmentMembership
from crmcore.domain.transaction import SalesChannel, Transaction, TransactionKind, TransactionLine

__all__ = [
    "CURRENCY_EXPONENTS",
    "DEFAULT_ACTOR",
    "DEFAULT_SCHEME",
    "TRANSITIONS",
    "AttributeValue",
    "AuditAction",
    "AuditEntity",
    "AuditEntry",
    "AuditOutcome",
    "CheckAlgorithm",
    "Consent",
    "ConsentPurpose",
    "ContactLabel",
    "CrmNumber",
    "CrmNumberScheme",
    "Customer",
    "CustomerAggregate",
    "CustomerErased",
    "CustomerRegistered",
    "CustomerUpdated",
    "CustomersImported",
    "CustomersMerged",
    "Direction",
    "DomainEvent",
    "EmailAddress",
    "Gender",
    "Interaction",
    "InteractionChannel",
    "InteractionKind",
    "InteractionRecorded",
    "InteractionsImported",
    "LifecycleStage",
    "Money",
    "PersonName",
    "PhoneNumber",
    "PostalAddress",
    "SalesChannel",
    "Segment",
    "SegmentEntered",
    "SegmentExited",
    "SegmentMembership",
    "StageChange",
    "StageChanged",
    "Transaction",
    "TransactionKind",
    "TransactionLine",
    "TransactionRecorded",
    "TransactionsImported",
    "check_actor",
    "check_transition",
    "currency_exponent",
]
