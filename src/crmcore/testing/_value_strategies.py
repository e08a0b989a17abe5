"""The hypothesis strategies of crmcore's values: aware datetimes, CRM numbers, currencies,
money, names, e-mail addresses, phone numbers and tags (public through
:mod:`crmcore.testing.strategies`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from crmcore.domain import (
    CURRENCY_EXPONENTS,
    DEFAULT_SCHEME,
    CrmNumber,
    CrmNumberScheme,
    EmailAddress,
    Money,
    PersonName,
    PhoneNumber,
)

__all__ = [
    "COMMON_CURRENCIES",
    "DEFAULT_MAX_TIME",
    "DEFAULT_MIN_TIME",
    "aware_datetimes",
    "crm_numbers",
    "currencies",
    "email_addresses",
    "money",
    "person_names",
    "phone_numbers",
    "tags",
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
