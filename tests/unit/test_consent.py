"""The consent ledger's domain: records, purposes, and the state derived from a ledger."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmcore import (
    DEFAULT_SCHEME,
    ConsentDecision,
    ConsentPurpose,
    ConsentRecord,
    InteractionChannel,
    LawfulBasis,
)
from crmcore.domain import consent_state, is_granted
from crmcore.domain.consent import history_order
from crmcore.errors import ValidationError
from crmcore.testing.strategies import consent_records

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
ANN = DEFAULT_SCHEME.format(1)
EMAIL, SMS = InteractionChannel.EMAIL, InteractionChannel.SMS


def rec(decision: str, at: dt.datetime, channel: object = None, **fields: object) -> ConsentRecord:
    return ConsentRecord(
        customer=ANN,
        purpose=fields.pop("purpose", "marketing"),
        channel=channel,
        decision=decision,
        at=at,
        **fields,
    )


def test_a_record_is_validated_and_defaults_to_consent_by_system() -> None:
    record = rec("granted", T0, "email")
    assert record.lawful_basis is LawfulBasis.CONSENT and record.actor == "system"
    assert record.channel is EMAIL and record.granted and isinstance(record.id, uuid.UUID)
    assert rec("granted", T0, purpose=ConsentPurpose.NEWSLETTER).purpose == "newsletter"
    for bad in ("Marketing", "", "x" * 65, "with space", "1st"):
        with pytest.raises(ValidationError, match="purpose"):
            rec("granted", T0, purpose=bad)
    with pytest.raises(ValidationError, match="expires_at"):
        rec("withdrawn", T0, expires_at=T0 + HOUR)
    with pytest.raises(ValidationError, match="expires_at"):
        rec("granted", T0, expires_at=T0)
    with pytest.raises(ValidationError, match="at"):
        rec("granted", dt.datetime(2026, 1, 1))
    with pytest.raises(ValidationError, match="decision"):
        rec("maybe", T0)


def test_the_repr_holds_no_evidence_or_source() -> None:
    record = rec("granted", T0, source="Form signed by Zebediah", evidence="scan:Zebediah")
    assert "Zebediah" not in repr(record)
    state = consent_state([record], T0)
    assert "Zebediah" not in repr(state)


def test_a_later_channel_decision_overrides_the_general_one_and_vice_versa() -> None:
    ledger = [
        rec("granted", T0),
        rec("withdrawn", T0 + HOUR, EMAIL),
        rec("granted", T0 + 2 * HOUR),
    ]
    assert is_granted(ledger, "marketing", EMAIL, T0)
    assert not is_granted(ledger, "marketing", EMAIL, T0 + HOUR)
    assert is_granted(ledger, "marketing", SMS, T0 + HOUR)
    assert is_granted(ledger, "marketing", EMAIL, T0 + 2 * HOUR)
    assert not is_granted(ledger, "profiling", None, T0 + 2 * HOUR)
    assert not is_granted(ledger, "marketing", None, T0 - HOUR)


def test_a_channel_only_grant_is_not_an_every_channel_grant() -> None:
    ledger = [rec("granted", T0, EMAIL)]
    assert is_granted(ledger, "marketing", EMAIL, T0)
    assert not is_granted(ledger, "marketing", None, T0)


def test_ties_on_at_go_to_the_later_appended_entry() -> None:
    ledger = [rec("granted", T0), rec("withdrawn", T0, EMAIL), rec("granted", T0, EMAIL)]
    assert is_granted(ledger, "marketing", EMAIL, T0)
    assert consent_state(ledger, T0).granted("marketing", EMAIL)
    flipped = [ledger[0], ledger[2], ledger[1]]
    assert not is_granted(flipped, "marketing", EMAIL, T0)
    assert not consent_state(flipped, T0).granted("marketing", "email")
    general_last = [rec("withdrawn", T0, EMAIL), rec("granted", T0)]
    assert consent_state(general_last, T0).granted("marketing", EMAIL)


def test_an_expired_grant_counts_as_not_granted() -> None:
    ledger = [rec("granted", T0), rec("granted", T0 + HOUR, expires_at=T0 + 2 * HOUR)]
    assert is_granted(ledger, "marketing", None, T0 + HOUR)
    assert not is_granted(ledger, "marketing", None, T0 + 2 * HOUR)  # the older grant is over
    assert not consent_state(ledger, T0 + 3 * HOUR).granted("marketing")


@given(
    st.lists(
        consent_records(
            ANN,
            purposes=("marketing",),
            channels=(None, EMAIL, SMS),
            instants=st.sampled_from((T0, T0 + HOUR)),
        ),
        max_size=8,
    ),
    st.sampled_from((T0 - HOUR, T0, T0 + HOUR, T0 + 2 * HOUR, T0 + dt.timedelta(days=2))),
)
def test_the_state_answers_as_the_fold_does(
    ledger: list[ConsentRecord], as_of: dt.datetime
) -> None:
    state = consent_state(ledger, as_of)
    for channel in (None, EMAIL, SMS, InteractionChannel.PHONE):
        expected = is_granted(ledger, "marketing", channel, as_of)
        assert state.granted("marketing", channel) is expected
    ordered = history_order(ledger)
    assert [r.at for r in ordered] == sorted(r.at for r in ledger)
    assert all(isinstance(r.decision, ConsentDecision) for r in ordered)
