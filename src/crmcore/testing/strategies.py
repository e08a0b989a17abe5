"""Public hypothesis strategies for crmcore's types, for crmcore's tests and yours.

Named as plurals of their type, taking ``min_*``/``max_*`` bounds and strategies as
arguments, returning ``SearchStrategy[T]``, in hypothesis' own style::

    from hypothesis import given
    from crmcore.testing.strategies import customers, transactions

    @given(customers())
    def test_every_customer_has_a_display_name(customer):
        assert customer.name.display

Everything generated is valid by construction (it passes the domain's validation) and varied:
unicode names, several currencies with their own minor units, refunds, optional fields present
or absent, timestamps in many UTC offsets (normalised to UTC by the domain).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from decimal import Decimal

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from crmcore._epoch import MICROS_PER_DAY, to_us
from crmcore.analytics import (
    FIELDS,
    Ago,
    And,
    At,
    Between,
    Compare,
    FieldKind,
    HasTag,
    InList,
    IsNull,
    Match,
    Not,
    Or,
    Rule,
)
from crmcore.domain import (
    CURRENCY_EXPONENTS,
    DEFAULT_SCHEME,
    Consent,
    ConsentPurpose,
    CrmNumber,
    CrmNumberScheme,
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
    PostalAddress,
    SalesChannel,
    Transaction,
    TransactionKind,
    TransactionLine,
)

__all__ = [
    "aware_datetimes",
    "crm_numbers",
    "currencies",
    "customers",
    "email_addresses",
    "interactions",
    "money",
    "person_names",
    "phone_numbers",
    "rules",
    "tags",
    "transactions",
]

DEFAULT_MIN_TIME = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
DEFAULT_MAX_TIME = dt.datetime(2035, 12, 31, tzinfo=dt.UTC)
COMMON_CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF", "KWD", "SEK", "BRL", "INR", "CLF")

# Phone numbers known valid in libphonenumber's metadata (ITU/Ofcom drama ranges and the like).
_PHONE_BASES = (
    "+4420794600",  # GB, Ofcom drama range
    "+1202555",  # US
    "+4930123",  # DE Berlin
    "+33142",  # FR Paris
    "+81312",  # JP Tokyo
)
_PHONE_SUFFIX_LENGTH = {"+4420794600": 2, "+1202555": 4, "+4930123": 4, "+33142": 6, "+81312": 6}

_TIMEZONES = st.sampled_from(
    [dt.UTC]
    + [
        dt.timezone(dt.timedelta(minutes=m))
        for m in (-600, -300, -210, 60, 120, 330, 345, 540, 840)
    ]
)

_NAME_TEXT = st.text(
    alphabet=st.characters(categories=("Lu", "Ll", "Lo", "Lm"), exclude_characters="\x00"),
    min_size=1,
    max_size=30,
)


def _check_bounds(name: str, low: object, high: object) -> None:
    if low is not None and high is not None and low > high:  # type: ignore[operator]
        raise InvalidArgument(f"min_{name}={low!r} is greater than max_{name}={high!r}")


def aware_datetimes(
    *,
    min_value: dt.datetime = DEFAULT_MIN_TIME,
    max_value: dt.datetime = DEFAULT_MAX_TIME,
) -> st.SearchStrategy[dt.datetime]:
    """Timezone-aware datetimes in varied UTC offsets, between two aware bounds."""
    for label, bound in (("min_value", min_value), ("max_value", max_value)):
        if bound.tzinfo is None:
            raise InvalidArgument(f"{label} must be timezone-aware, got {bound!r}")
    _check_bounds("value", min_value, max_value)
    low = min_value.astimezone(dt.UTC).replace(tzinfo=None)
    high = max_value.astimezone(dt.UTC).replace(tzinfo=None)
    return st.builds(
        lambda naive, tz: naive.replace(tzinfo=dt.UTC).astimezone(tz),
        st.datetimes(min_value=low, max_value=high),
        _TIMEZONES,
    )


def crm_numbers(
    scheme: CrmNumberScheme = DEFAULT_SCHEME,
    *,
    min_sequence: int = 1,
    max_sequence: int | None = None,
) -> st.SearchStrategy[CrmNumber]:
    """Valid CRM numbers of ``scheme``."""
    high = scheme.max_sequence if max_sequence is None else max_sequence
    if min_sequence < 1 or high > scheme.max_sequence:
        raise InvalidArgument(f"sequences must lie in 1..{scheme.max_sequence}")
    _check_bounds("sequence", min_sequence, high)
    return st.integers(min_sequence, high).map(scheme.format)


def currencies(codes: Sequence[str] | None = None) -> st.SearchStrategy[str]:
    """ISO 4217 codes: ``codes`` if given, else a mix of common ones and any active code."""
    if codes is not None:
        for code in codes:
            if code not in CURRENCY_EXPONENTS:
                raise InvalidArgument(f"{code!r} is not an ISO 4217 code")
        return st.sampled_from(list(codes))
    return st.one_of(
        st.sampled_from(COMMON_CURRENCIES), st.sampled_from(sorted(CURRENCY_EXPONENTS))
    )


def money(
    currency: str | st.SearchStrategy[str] | None = None,
    *,
    min_amount: Decimal | int = Decimal("0.01"),
    max_amount: Decimal | int = Decimal(100_000),
) -> st.SearchStrategy[Money]:
    """Amounts with exactly the decimals their currency allows, between two bounds.

    Bounds are rounded inward to the currency's minor unit.
    """
    low, high = Decimal(min_amount), Decimal(max_amount)
    _check_bounds("amount", low, high)
    codes = (
        currencies()
        if currency is None
        else (st.just(currency) if isinstance(currency, str) else currency)
    )

    def for_code(code: str) -> st.SearchStrategy[Money]:
        exponent = CURRENCY_EXPONENTS[code]
        scale = 10**exponent
        lo = int((low * scale).to_integral_value(rounding="ROUND_CEILING"))
        hi = int((high * scale).to_integral_value(rounding="ROUND_FLOOR"))
        if lo > hi:
            raise InvalidArgument(f"no {code} amount lies between {low} and {high}")
        return st.integers(lo, hi).map(lambda minor: Money.from_minor_units(minor, code))

    if isinstance(currency, str):
        return for_code(currency)  # fail fast on impossible bounds for a fixed currency
    return codes.flatmap(for_code)


def person_names() -> st.SearchStrategy[PersonName]:
    """Names in many scripts, with given and/or family part, sometimes a display override."""
    optional = st.none() | _NAME_TEXT
    return (
        st.tuples(optional, optional, optional)
        .filter(any)
        .map(lambda parts: PersonName(given=parts[0], family=parts[1], display=parts[2] or ""))
    )


def email_addresses() -> st.SearchStrategy[EmailAddress]:
    """Syntactically valid addresses (ASCII and internationalised local parts)."""
    local = st.text(
        alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789._+-éüß"),
        min_size=1,
        max_size=20,
    ).filter(lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s)
    domain = st.sampled_from(["example.com", "example.org", "mail.example.net", "beispiel.de"])
    return st.builds(lambda lp, d: EmailAddress(f"{lp}@{d}"), local, domain)


def phone_numbers() -> st.SearchStrategy[PhoneNumber]:
    """Valid numbers from a few regions, in E.164 form."""

    def build(base: str) -> st.SearchStrategy[PhoneNumber]:
        length = _PHONE_SUFFIX_LENGTH[base]
        return st.integers(0, 10**length - 1).map(
            lambda n: PhoneNumber(f"{base}{str(n).zfill(length)}")
        )

    return st.sampled_from(_PHONE_BASES).flatmap(build)


def tags() -> st.SearchStrategy[str]:
    """Tag strings as the domain normalises them (lower case, no separators)."""
    return st.sampled_from(
        ["vip", "newsletter", "b2b", "wholesale", "student", "früh", "早期", "gold", "staff"]
    ) | st.from_regex(r"[a-z][a-z0-9_\-]{0,15}", fullmatch=True)


def _consents(at: st.SearchStrategy[dt.datetime]) -> st.SearchStrategy[Consent]:
    return st.builds(
        Consent,
        purpose=st.sampled_from(ConsentPurpose),
        channel=st.none() | st.sampled_from(InteractionChannel),
        granted=st.booleans(),
        at=at,
        source=st.none() | st.sampled_from(["web-form", "call-centre", "import"]),
    )


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
        consents=tuple(
            draw(
                st.lists(
                    _consents(aware_datetimes(min_value=created, max_value=max_created)), max_size=3
                )
            )
        ),
        stage=draw(st.sampled_from(list(stages))),
        owner=draw(st.none() | st.sampled_from(["agent-1", "agent-2", "key-accounts"])),
        source=draw(st.just("crm-import")) if with_ext else None,
        external_id=draw(st.from_regex(r"[A-Z0-9]{4,10}", fullmatch=True)) if with_ext else None,
        version=0,
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
    sources: Sequence[str] | None = ("erp", "webshop"),
    external_refs: st.SearchStrategy[str] | None = None,
    with_lines: bool = True,
) -> st.SearchStrategy[Transaction]:
    """Valid purchases and refunds (``reporting_total`` unset; the services fill it in).

    Args:
        customer: a number or a strategy of numbers (default: any number).
        currency: a code or a strategy of codes (default: a mix, see :func:`currencies`).
        refund_probability: share of refunds, 0..1.
        sources: sources drawn for ``(source, external_ref)``; ``None`` for no references.
        external_refs: strategy for references (a small ``sampled_from`` provokes duplicates).
        with_lines: whether to draw transaction lines.
    """
    if not 0 <= refund_probability <= 1:
        raise InvalidArgument(f"refund_probability={refund_probability!r} must lie in [0, 1]")
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


# -- segment rules -----------------------------------------------------------------------------

RULE_TEXTS: Sequence[str] = (
    "",
    "a",
    "A",
    "agent",
    "agent ",
    "Agent",
    "agent-1",
    "key-accounts",
    "%",
    "_",
    "\\",
    "a%",
    "a_b",
    "'",
    '"',
    "--",
    ";",
    "' ; -- % _ \\",
    "O'Brien; DROP TABLE customers; --",
    "\U0001f600",
    "x\U0001f600y",
)
"""Text literals :func:`rules` favours: SQL wildcards, quotes, escapes, case and space
variants, astral characters (the ones a rule compiler gets wrong first)."""

_RULE_INTS = (0, 1, 2, 3, 5, 7, 10, 14, 30, 100, 365, 1000, 5000, -1, 1990, 2000)
_INT64 = (-(2**63), 2**63 - 1)
_OPS = ("==", "!=", "<", "<=", ">", ">=")


def _rule_values(
    name: str,
    texts: st.SearchStrategy[str],
    instants: tuple[int, int],
) -> st.SearchStrategy[int | str | At | Ago]:
    """Literals a rule may compare field ``name`` with."""
    spec = FIELDS[name]
    if spec.kind is FieldKind.INT:
        return st.one_of(st.sampled_from(_RULE_INTS), st.sampled_from(_INT64), st.integers(*_INT64))
    if spec.kind is FieldKind.INSTANT:
        days_ago = st.builds(
            lambda days, nudge: Ago(days * MICROS_PER_DAY + nudge),
            st.integers(-3, 800),
            st.sampled_from((0, 1, -1)),
        )
        far = st.sampled_from((Ago(10**17), Ago(-(10**17))))
        return st.one_of(days_ago, st.integers(*instants).map(At), far)
    if spec.choices:
        return st.sampled_from(spec.choices)
    if name == "crm_number":
        return st.sampled_from(("C", "C0", "C00000000")) | texts
    return texts


def _leaves(
    names: Sequence[str],
    texts: st.SearchStrategy[str],
    tag_names: st.SearchStrategy[str],
    instants: tuple[int, int],
) -> st.SearchStrategy[Rule]:
    def for_field(name: str) -> st.SearchStrategy[Rule]:
        spec = FIELDS[name]
        if spec.kind is FieldKind.TAGS:
            return tag_names.map(HasTag)
        values = _rule_values(name, texts, instants)
        value_lists = st.lists(values, max_size=3)
        is_null = st.builds(IsNull, st.just(name), st.booleans())
        if spec.kind is FieldKind.TEXT:
            options = [
                st.builds(Compare, st.just(name), st.sampled_from(("==", "!=")), values),
                st.builds(InList, st.just(name), value_lists, st.booleans()),
                is_null,
            ]
            if not spec.choices:
                kinds = st.sampled_from(("startswith", "contains"))
                options.append(st.builds(Match, st.just(name), kinds, texts))
            return st.one_of(options)
        # Bounds in order (as of the latest instant), so a range is rarely empty.
        late = instants[1]
        between = st.tuples(values, values).map(
            lambda pair: Between(
                name, *sorted(pair, key=lambda v: v.resolve(late) if isinstance(v, At | Ago) else v)
            )
        )
        options = [st.builds(Compare, st.just(name), st.sampled_from(_OPS), values), between]
        if spec.kind is FieldKind.INT:
            options.append(st.builds(InList, st.just(name), value_lists, st.booleans()))
        options.append(is_null)
        return st.one_of(options)

    return st.one_of([for_field(name) for name in names])


def rules(
    *,
    fields: Collection[str] | None = None,
    max_depth: int = 3,
    texts: st.SearchStrategy[str] | None = None,
    tag_names: st.SearchStrategy[str] | None = None,
    min_instant: dt.datetime = DEFAULT_MIN_TIME,
    max_instant: dt.datetime = DEFAULT_MAX_TIME,
) -> st.SearchStrategy[Rule]:
    """Segment rules (:class:`~crmcore.analytics.Rule` trees) over snapshot fields.

    Leaves are every kind of condition the rule language has (comparisons, ranges, lists,
    ``is None``, literal text matches, tags) with values chosen to find compiler bugs:
    64-bit extremes, instants relative to ``now()`` and far outside any data, text with SQL
    wildcards and quotes (:data:`RULE_TEXTS`). Compound rules (``not``, ``and``, ``or``)
    nest up to ``max_depth``. Rules shrink towards a single leaf on the first field.

    Args:
        fields: names from :data:`~crmcore.analytics.FIELDS` the leaves test (default: all).
        max_depth: how deep ``not``/``and``/``or`` may nest (0: leaves only).
        texts: text literals (default: :data:`RULE_TEXTS` or any short text).
        tag_names: tags tested with ``"x" in tags`` (default: :func:`tags` and case and
            space variants of common tags).
        min_instant, max_instant: aware bounds of fixed instants (``datetime(...)``).

    Returns:
        A strategy of rules that :func:`~crmcore.analytics.parse_rule` reads back from
        ``str(rule)``.
    """
    names = sorted(FIELDS) if fields is None else sorted(set(fields))
    if not names:
        raise InvalidArgument("fields must not be empty")
    unknown = [name for name in names if name not in FIELDS]
    if unknown:
        raise InvalidArgument(f"unknown fields {unknown!r}; see crmcore.analytics.FIELDS")
    if isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 0:
        raise InvalidArgument(f"max_depth={max_depth!r} must be a whole number >= 0")
    for label, strategy in (("texts", texts), ("tag_names", tag_names)):
        if strategy is not None and not isinstance(strategy, st.SearchStrategy):
            raise InvalidArgument(f"{label}={strategy!r} must be a strategy")
    for label, bound in (("min_instant", min_instant), ("max_instant", max_instant)):
        if bound.tzinfo is None:
            raise InvalidArgument(f"{label} must be timezone-aware, got {bound!r}")
    _check_bounds("instant", min_instant, max_instant)
    no_nul = st.text(max_size=20).filter(lambda s: "\x00" not in s)
    text_values = texts if texts is not None else st.sampled_from(RULE_TEXTS) | no_nul
    tag_values = (
        tag_names
        if tag_names is not None
        else st.sampled_from(("vip", "VIP", "vip ", "gold", "%", "a_b")) | tags()
    )
    leaves = _leaves(names, text_values, tag_values, (to_us(min_instant), to_us(max_instant)))

    def nested(depth: int) -> st.SearchStrategy[Rule]:
        if depth == 0:
            return leaves
        inner = nested(depth - 1)
        operands = st.lists(inner, min_size=2, max_size=3)
        compound: st.SearchStrategy[Rule] = st.one_of(
            inner.map(Not), operands.map(And), operands.map(Or)
        )
        return leaves | compound

    return nested(max_depth)
