"""CRM numbers: formatting, tolerant parsing, and the check digit's error detection."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmcore import DEFAULT_SCHEME, CheckAlgorithm, CrmNumber, CrmNumberScheme
from crmcore.errors import ConfigurationError, ValidationError
from crmcore.testing.strategies import crm_numbers

SMALL = CrmNumberScheme(prefix="C", width=3)


def _all_numbers(scheme: CrmNumberScheme) -> list[str]:
    return [scheme.format(seq).value for seq in range(1, scheme.max_sequence + 1)]


def test_damm_detects_every_single_digit_substitution_exhaustively() -> None:
    for number in _all_numbers(SMALL):
        digits = number[1:]
        for position, replacement in itertools.product(range(len(digits)), "0123456789"):
            if digits[position] == replacement:
                continue
            mutated = digits[:position] + replacement + digits[position + 1 :]
            assert not SMALL.is_valid("C" + mutated), (number, mutated)


def test_damm_detects_every_adjacent_transposition_exhaustively() -> None:
    for number in _all_numbers(SMALL):
        digits = number[1:]
        for position in range(len(digits) - 1):
            a, b = digits[position], digits[position + 1]
            if a == b:
                continue
            swapped = digits[:position] + b + a + digits[position + 2 :]
            assert not SMALL.is_valid("C" + swapped), (number, swapped)


def test_luhn_misses_the_09_90_transposition_that_damm_catches() -> None:
    luhn = CrmNumberScheme(width=3, algorithm=CheckAlgorithm.LUHN)
    misses = 0
    for number in _all_numbers(luhn):
        digits = number[1:]
        for position in range(len(digits) - 1):
            a, b = digits[position], digits[position + 1]
            swapped = digits[:position] + b + a + digits[position + 2 :]
            if a != b and luhn.is_valid("C" + swapped):
                misses += 1
                assert {a, b} == {"0", "9"}
    assert misses > 0


def test_format_pads_the_sequence_and_appends_the_check_digit() -> None:
    number = DEFAULT_SCHEME.format(1234)
    assert number.value.startswith("C000001234")
    assert len(number.value) == DEFAULT_SCHEME.length == 11
    assert DEFAULT_SCHEME.sequence_of(number) == 1234


@given(crm_numbers())
def test_parse_round_trips_canonical_text(number: CrmNumber) -> None:
    assert CrmNumber.parse(number.value) == number
    assert CrmNumber.parse(str(number)) == number


@given(crm_numbers(), st.sampled_from([" ", "-", "  ", ".", " - "]))
def test_parse_tolerates_case_whitespace_and_group_separators(
    number: CrmNumber, separator: str
) -> None:
    text = number.value.lower()
    grouped = separator.join([text[:1], text[1:4], text[4:7], text[7:]])
    assert CrmNumber.parse(f"  {grouped}\t") == number


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("X0000012340", "wrong prefix"),
        ("C00000123", "wrong length"),
        ("C000001234A", "only digits"),
        ("C0000012341", "wrong check digit"),
    ],
)
def test_parse_says_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason) as info:
        DEFAULT_SCHEME.parse(text)
    assert info.value.field == "crm_number"
    assert info.value.value == text


def test_schemes_are_validated_and_can_be_exhausted() -> None:
    with pytest.raises(ConfigurationError):
        CrmNumberScheme(prefix="c1")
    with pytest.raises(ConfigurationError):
        CrmNumberScheme(width=1)
    with pytest.raises(ConfigurationError, match="exhausted"):
        CrmNumberScheme(width=2).format(100)
    with pytest.raises(ValidationError):
        DEFAULT_SCHEME.format(0)


def test_numbers_order_by_sequence_within_a_scheme() -> None:
    numbers = [DEFAULT_SCHEME.format(seq) for seq in (10, 2, 300, 1)]
    assert [DEFAULT_SCHEME.sequence_of(n) for n in sorted(numbers)] == [1, 2, 10, 300]
