"""What the differential machine's steps draw: small pools of e-mails, phones, external ids
and references (so collisions are frequent) and the strategies of customers, interactions
and transactions built from them."""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal

from hypothesis import strategies as st

from crmcore.domain import (
    CrmNumber,
    Customer,
    Direction,
    EmailAddress,
    Gender,
    Interaction,
    InteractionChannel,
    InteractionKind,
    LifecycleStage,
    Money,
    PersonName,
    PhoneNumber,
    SalesChannel,
    Transaction,
    TransactionKind,
    TransactionLine,
)
from crmcore.testing import strategies as cst

# Small pools make collisions (shared e-mails, duplicate references, ...) frequent.
_EMAILS = ("ann@example.com", "Ann@Example.com", "bob@example.org", "cy@beispiel.de")
_PHONES = ("+12025550100", "+12025550101", "+4930123456")
_EXTERNAL_IDS = ("A1", "A2", "B7")
_REFS = ("R1", "R2", "R3", "R4")
_SEGMENTS = ("vip", "lapsed", "b2b")
_EXTERNAL_KEYS = tuple((s, e) for s in ("erp", "shop") for e in _EXTERNAL_IDS)
_START = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def _email_lists() -> st.SearchStrategy[tuple[EmailAddress, ...]]:
    return st.lists(st.sampled_from(_EMAILS).map(EmailAddress), max_size=2, unique=True).map(tuple)


def _phone_lists() -> st.SearchStrategy[tuple[PhoneNumber, ...]]:
    return st.lists(st.sampled_from(_PHONES).map(PhoneNumber), max_size=2, unique=True).map(tuple)


def _external_ids() -> st.SearchStrategy[tuple[str, str] | None]:
    return st.none() | st.tuples(st.sampled_from(("erp", "shop")), st.sampled_from(_EXTERNAL_IDS))


# The machine's own strategies are built once, at import, and draw a little less variety
# than :mod:`crmcore.testing.strategies` (whose full variety the contract's round-trip cases
# cover): drawing thousands of steps must be cheap, so that 200 x 30 stays fast.
_TIMES = cst.aware_datetimes(min_value=_START - dt.timedelta(days=400), max_value=_START)
_TEXT = st.none() | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
_PLACEHOLDER = CrmNumber("C00")

_CUSTOMERS = st.builds(
    lambda name, created, seconds, **fields: Customer(
        number=_PLACEHOLDER,
        name=name,
        created_at=created,
        updated_at=created + dt.timedelta(seconds=seconds),
        **fields,
    ),
    name=st.builds(PersonName, given=st.sampled_from(("Ann", "Łukasz", "美咲")), family=_TEXT),
    created=_TIMES,
    seconds=st.integers(0, 10**6),
    gender=st.none() | st.sampled_from(Gender),
    birth_date=st.none() | st.dates(dt.date(1930, 1, 1), dt.date(2010, 1, 1)),
    organisation=_TEXT,
    tags=st.frozensets(st.sampled_from(("vip", "b2b", "früh")), max_size=2),
    attributes=st.dictionaries(
        st.sampled_from(("tier", "since", "score")),
        st.integers(-5, 10**12)
        | st.booleans()
        | st.decimals(places=2, allow_nan=False, allow_infinity=False)
        | st.dates()
        | _TIMES
        | _TEXT.filter(lambda t: t is not None),
        max_size=2,
    ),
    stage=st.sampled_from(LifecycleStage),
    owner=st.none() | st.sampled_from(("agent-1", "agent-2")),
)

# Few purposes and instants: decisions collide on (purpose, channel) and tie on "at", which
# is where the ledgers' order and the state's override rules can diverge.
_CONSENTS = cst.consent_records(
    _PLACEHOLDER,
    purposes=("marketing", "loyalty.club"),
    channels=(None, InteractionChannel.EMAIL, InteractionChannel.SMS),
    instants=st.sampled_from((_START - dt.timedelta(days=2), _START - dt.timedelta(hours=1)))
    | _TIMES,
)

_INTERACTIONS = st.builds(
    Interaction,
    customer=st.just(_PLACEHOLDER),
    occurred_at=_TIMES,
    channel=st.sampled_from(InteractionChannel),
    direction=st.sampled_from(Direction),
    kind=st.sampled_from(InteractionKind),
    subject=_TEXT,
    follow_up_due=st.none() | _TIMES,
    source=st.just("helpdesk"),
    external_ref=st.none() | st.sampled_from(_REFS),
    id=st.uuids(),
)

_TRANSACTIONS = st.builds(
    lambda total, lines, **fields: Transaction(
        total=total,
        lines=tuple(TransactionLine("SKU-1", quantity, total) for quantity in lines),
        **fields,
    ),
    customer=st.just(_PLACEHOLDER),
    occurred_at=_TIMES,
    kind=st.sampled_from(TransactionKind),
    total=st.sampled_from(("USD", "JPY", "KWD", "EUR")).flatmap(
        lambda code: st.integers(1, 10**7).map(
            functools.partial(Money.from_minor_units, currency=code)
        )
    ),
    lines=st.lists(st.sampled_from((Decimal(1), Decimal("2.5"))), max_size=1),
    channel=st.sampled_from(SalesChannel),
    source=st.just("erp"),
    external_ref=st.none() | st.sampled_from(_REFS),
    id=st.uuids(),
)
