"""The customer domain: entities, value objects, rules and events. Pure: no I/O."""

from crmcore.domain.aggregates import CustomerAggregate
from crmcore.domain.consent import (
    Consent,
    ConsentDecision,
    ConsentPurpose,
    ConsentRecord,
    ConsentState,
    LawfulBasis,
    consent_state,
    is_granted,
)
from crmcore.domain.contact import ContactLabel, EmailAddress, PhoneNumber, PostalAddress
from crmcore.domain.customer import (
    AttributeValue,
    Customer,
    Gender,
    PersonName,
)
from crmcore.domain.events import (
    ConsentChanged,
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
    "DEFAULT_SCHEME",
    "TRANSITIONS",
    "AttributeValue",
    "CheckAlgorithm",
    "Consent",
    "ConsentChanged",
    "ConsentDecision",
    "ConsentPurpose",
    "ConsentRecord",
    "ConsentState",
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
    "LawfulBasis",
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
    "check_transition",
    "consent_state",
    "currency_exponent",
    "is_granted",
]
