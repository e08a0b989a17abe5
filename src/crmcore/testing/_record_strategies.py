"""The hypothesis strategies of crmcore's records: customers, interactions and transactions
(public through :mod:`crmcore.testing.strategies`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from crmcore.domain import (
    ConsentDecision,
    ConsentPurpose,
    ConsentRecord,
    CrmNumber,
    Customer,
    Direction,
    Gender,
    Interaction,
    InteractionChannel,
    InteractionKind,
    LawfulBasis,
    LifecycleStage,
    Money,
    PostalAddress,
    SalesChannel,
    Transaction,
    TransactionKind,
    TransactionLine,
)
from crmcore.testing._value_strategies import (
    _NAME_TEXT,
    DEFAULT_MAX_TIME,
    DEFAULT_MIN_TIME,
    _check_bounds,
    aware_datetimes,
    crm_numbers,
    email_addresses,
    money,
    person_names,
    phone_numbers,
    tags,
)

__all__ = ["consent_records", "customers", "interactions", "transactions"]


@st.composite
def _customer(
    draw: st.DrawFn,
    numbers: st.SearchStrategy[CrmNumber],
    min_created: dt.datetime,
    max_created: dt.datetime,
    stages: Sequence[LifecycleStage],
) -> Customer:
    created = draw(aware_datetimes(min_value=min_created, max_value=max_created))
    updated = draw(aware_datetimes(min_value=created, max_value=max_created))
    with_ext = draw(st.booleans())
    optional_text = st.none() | st.text(min_size=1, max_size=40).filter(
        lambda s: bool(s.strip()) and "\x00" not in s
    )
    return Customer(
        number=draw(numbers),
        name=draw(person_names()),
        created_at=created,
        updated_at=updated,
        gender=draw(st.none() | st.sampled_from(Gender)),
        birth_date=draw(st.none() | st.dates(dt.date(1920, 1, 1), dt.date(2010, 12, 31))),
        title=draw(st.none() | st.sampled_from(["Dr", "Prof", "Mx", "Ms", "Mr"])),
        job_title=draw(optional_text),
        organisation=draw(optional_text),
        emails=tuple(draw(st.lists(email_addresses(), max_size=3))),
        phones=tuple(draw(st.lists(phone_numbers(), max_size=2))),
        addresses=tuple(
            draw(
                st.lists(
                    st.builds(
                        PostalAddress,
                        country=st.sampled_from(["DE", "GB", "US", "JP", "BR"]),
                        lines=st.lists(_NAME_TEXT, max_size=2),
                        locality=st.none() | _NAME_TEXT,
                        postal_code=st.none() | st.from_regex(r"[0-9]{5}", fullmatch=True),
                    ),
                    max_size=2,
                )
            )
        ),
        preferred_channel=draw(st.none() | st.sampled_from(InteractionChannel)),
        tags=draw(st.frozensets(tags(), max_size=4)),
        attributes=draw(
            st.dictionaries(
                st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
                st.one_of(
                    st.integers(-(10**12), 10**12),
                    st.booleans(),
                    st.text(max_size=20).filter(lambda s: "\x00" not in s).map(str.strip),
                    st.decimals(allow_nan=False, allow_infinity=False, places=2),
                    st.dates(),
                    aware_datetimes(),
                ),
                max_size=3,
            )
        ),
        stage=draw(st.sampled_from(list(stages))),
        owner=draw(st.none() | st.sampled_from(["agent-1", "agent-2", "key-accounts"])),
        source=draw(st.just("crm-import")) if with_ext else None,
        external_id=draw(st.from_regex(r"[A-Z0-9]{4,10}", fullmatch=True)) if with_ext else None,
        version=0,
        anonymised_at=draw(st.none() | aware_datetimes(min_value=created, max_value=max_created)),
    )


def customers(
    *,
    numbers: st.SearchStrategy[CrmNumber] | None = None,
    min_created: dt.datetime = DEFAULT_MIN_TIME,
    max_created: dt.datetime = DEFAULT_MAX_TIME,
    stages: Sequence[LifecycleStage | str] | None = None,
) -> st.SearchStrategy[Customer]:
    """Valid customers with varied profiles.

    Args:
        numbers: strategy for CRM numbers (default: :func:`crm_numbers`).
        min_created, max_created: bounds of ``created_at`` (aware).
        stages: lifecycle stages to draw from (default: all).
    """
    _check_bounds("created", min_created, max_created)
    chosen = [LifecycleStage(s) for s in stages] if stages is not None else list(LifecycleStage)
    if not chosen:
        raise InvalidArgument("stages must not be empty")
    return _customer(
        numbers if numbers is not None else crm_numbers(), min_created, max_created, chosen
    )


def interactions(
    customer: CrmNumber | st.SearchStrategy[CrmNumber] | None = None,
    *,
    min_occurred: dt.datetime = DEFAULT_MIN_TIME,
    max_occurred: dt.datetime = DEFAULT_MAX_TIME,
    sources: Sequence[str] | None = ("crm-import", "helpdesk"),
    external_refs: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[Interaction]:
    """Valid interactions, optionally for one customer or a strategy of customers.

    ``external_refs`` draws the external references (``None`` for none). Pass a small
    ``sampled_from`` to provoke duplicates deliberately.
    """
    _check_bounds("occurred", min_occurred, max_occurred)
    who = (
        crm_numbers()
        if customer is None
        else (st.just(customer) if isinstance(customer, CrmNumber) else customer)
    )
    refs = (
        external_refs
        if external_refs is not None
        else st.from_regex(r"I[0-9]{1,8}", fullmatch=True)
    )
    text = st.none() | st.text(max_size=60).filter(lambda s: "\x00" not in s)

    @st.composite
    def build(draw: st.DrawFn) -> Interaction:
        occurred = draw(aware_datetimes(min_value=min_occurred, max_value=max_occurred))
        use_ref = sources is not None and draw(st.booleans())
        return Interaction(
            customer=draw(who),
            occurred_at=occurred,
            channel=draw(st.sampled_from(InteractionChannel)),
            direction=draw(st.sampled_from(Direction)),
            kind=draw(st.sampled_from(InteractionKind)),
            subject=draw(text),
            notes=draw(text),
            outcome=draw(st.none() | st.sampled_from(["resolved", "callback", "escalated"])),
            agent=draw(st.none() | st.sampled_from(["agent-1", "agent-2"])),
            follow_up_due=draw(
                st.none() | aware_datetimes(min_value=occurred, max_value=DEFAULT_MAX_TIME)
            ),
            source=draw(st.sampled_from(list(sources))) if use_ref and sources else None,
            external_ref=draw(refs) if use_ref else None,
            id=draw(st.uuids()),
        )

    return build()


def transactions(
    customer: CrmNumber | st.SearchStrategy[CrmNumber] | None = None,
    *,
    currency: str | st.SearchStrategy[str] | None = None,
    min_amount: Decimal | int = Decimal("0.01"),
    max_amount: Decimal | int = Decimal(10_000),
    min_occurred: dt.datetime = DEFAULT_MIN_TIME,
    max_occurred: dt.datetime = DEFAULT_MAX_TIME,
    refund_probability: float = 0.1,
    free_probability: float = 0.05,
    sources: Sequence[str] | None = ("erp", "webshop"),
    external_refs: st.SearchStrategy[str] | None = None,
    with_lines: bool = True,
) -> st.SearchStrategy[Transaction]:
    """Valid purchases and refunds (``reporting_total`` unset; the services fill it in).

    Args:
        customer: a number or a strategy of numbers (default: any number).
        currency: a code or a strategy of codes (default: a mix, see :func:`currencies`).
        refund_probability: share of refunds, 0..1.
        free_probability: share of purchases whose total is zero (free promotional orders
            are real purchases), 0..1.
        sources: sources drawn for ``(source, external_ref)``; ``None`` for no references.
        external_refs: strategy for references (a small ``sampled_from`` provokes duplicates).
        with_lines: whether to draw transaction lines.
    """
    if not 0 <= refund_probability <= 1:
        raise InvalidArgument(f"refund_probability={refund_probability!r} must lie in [0, 1]")
    if not 0 <= free_probability <= 1:
        raise InvalidArgument(f"free_probability={free_probability!r} must lie in [0, 1]")
    _check_bounds("occurred", min_occurred, max_occurred)
    who = (
        crm_numbers()
        if customer is None
        else (st.just(customer) if isinstance(customer, CrmNumber) else customer)
    )
    refs = (
        external_refs
        if external_refs is not None
        else st.from_regex(r"T[0-9]{1,8}", fullmatch=True)
    )

    @st.composite
    def build(draw: st.DrawFn) -> Transaction:
        total = draw(money(currency, min_amount=min_amount, max_amount=max_amount))
        is_refund = draw(st.floats(0, 1, exclude_max=True)) < refund_probability
        if not is_refund and draw(st.floats(0, 1, exclude_max=True)) < free_probability:
            total = Money.zero(total.currency)
        use_ref = sources is not None and draw(st.booleans())
        lines: list[TransactionLine] = []
        if with_lines and draw(st.booleans()):
            lines = [
                TransactionLine(
                    sku=draw(st.from_regex(r"SKU-[0-9]{3}", fullmatch=True)),
                    quantity=Decimal(draw(st.integers(1, 5))),
                    unit_price=total,
                )
            ]
        return Transaction(
            customer=draw(who),
            occurred_at=draw(aware_datetimes(min_value=min_occurred, max_value=max_occurred)),
            kind=TransactionKind.REFUND if is_refund else TransactionKind.PURCHASE,
            total=total,
            channel=draw(st.sampled_from(SalesChannel)),
            lines=tuple(lines),
            source=draw(st.sampled_from(list(sources))) if use_ref and sources else None,
            external_ref=draw(refs) if use_ref else None,
            id=draw(st.uuids()),
        )

    return build()


CONSENT_PURPOSES: tuple[str, ...] = (*(p.value for p in ConsentPurpose), "loyalty.club")
"""The purposes :func:`consent_records` draws by default: the well-known ones and a slug."""


def consent_records(
    customer: CrmNumber | st.SearchStrategy[CrmNumber] | None = None,
    *,
    purposes: Sequence[str] | None = None,
    channels: Sequence[InteractionChannel | None] | None = None,
    min_at: dt.datetime = DEFAULT_MIN_TIME,
    max_at: dt.datetime = DEFAULT_MAX_TIME,
    instants: st.SearchStrategy[dt.datetime] | None = None,
    expiring: bool = True,
) -> st.SearchStrategy[ConsentRecord]:
    """Valid consent ledger entries: grants (some expiring) and withdrawals.

    Args:
        customer: a number or a strategy of numbers (default: any number).
        purposes: purposes to draw from (default: :data:`CONSENT_PURPOSES`); a short list
            makes decisions on one purpose collide, which is what state tests want.
        channels: channels to draw from, ``None`` meaning every channel (default: ``None``
            and every :class:`~crmcore.InteractionChannel`).
        min_at, max_at: bounds of ``at`` (aware).
        instants: a strategy for ``at`` instead of the bounds (a small ``sampled_from``
            provokes ties, which the ledger breaks by append order).
        expiring: whether grants may carry ``expires_at``.
    """
    _check_bounds("at", min_at, max_at)
    who = (
        crm_numbers()
        if customer is None
        else (st.just(customer) if isinstance(customer, CrmNumber) else customer)
    )
    chosen_purposes = list(purposes) if purposes is not None else list(CONSENT_PURPOSES)
    chosen_channels = list(channels) if channels is not None else [None, *InteractionChannel]
    if not chosen_purposes or not chosen_channels:
        raise InvalidArgument("purposes and channels must not be empty")
    when = instants if instants is not None else aware_datetimes(min_value=min_at, max_value=max_at)

    @st.composite
    def build(draw: st.DrawFn) -> ConsentRecord:
        at = draw(when)
        decision = draw(st.sampled_from(ConsentDecision))
        expires = None
        if expiring and decision is ConsentDecision.GRANTED and draw(st.booleans()):
            expires = at + draw(
                st.sampled_from(
                    [dt.timedelta(microseconds=1), dt.timedelta(days=1), dt.timedelta(days=400)]
                )
            )
        return ConsentRecord(
            customer=draw(who),
            purpose=draw(st.sampled_from(chosen_purposes)),
            channel=draw(st.sampled_from(chosen_channels)),
            decision=decision,
            at=at,
            lawful_basis=draw(st.sampled_from(LawfulBasis)),
            text_hash=draw(st.none() | st.from_regex(r"sha256:[0-9a-f]{8}", fullmatch=True)),
            source=draw(st.none() | st.sampled_from(["web-form", "call-centre", "import"])),
            evidence=draw(st.none() | st.from_regex(r"EV-[0-9]{1,6}", fullmatch=True)),
            actor=draw(st.sampled_from(["system", "user:42", "job:nightly-import"])),
            expires_at=expires,
            # Version 4, as uuid4() makes them (MariaDB's native UUID column refuses ids
            # whose variant bits are not RFC 4122's).
            id=draw(st.uuids(version=4)),
        )

    return build()
