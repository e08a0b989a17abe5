"""The consent ledger's part of the contract: append-only, history order, derived state."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmcore.clock import FixedClock
from crmcore.domain import (
    ConsentDecision,
    ConsentRecord,
    CrmNumber,
    InteractionChannel,
    consent_state,
    is_granted,
)
from crmcore.domain.consent import history_order
from crmcore.errors import DuplicateError, ErasedError, NotFound
from crmcore.ports import Store
from crmcore.services import Crm
from crmcore.testing import strategies as cst
from crmcore.testing.contract._support import (
    PROPERTY_SETTINGS,
    T0,
    Boom,
    StoreFixture,
    is_utc,
    read,
    register,
    write,
)

_HOUR = dt.timedelta(hours=1)
_EMAIL, _SMS = InteractionChannel.EMAIL, InteractionChannel.SMS
_GRANTED, _WITHDRAWN = ConsentDecision.GRANTED, ConsentDecision.WITHDRAWN
_PLACEHOLDER = CrmNumber("C00")
_TIES = (T0, T0 + _HOUR, T0 + 2 * _HOUR)


def _record(
    number: CrmNumber,
    decision: ConsentDecision,
    at: dt.datetime,
    channel: InteractionChannel | None = None,
    purpose: str = "marketing",
    **changes: Any,
) -> ConsentRecord:
    return ConsentRecord(
        customer=number, purpose=purpose, channel=channel, decision=decision, at=at, **changes
    )


def _history(store: Store, number: CrmNumber) -> list[ConsentRecord]:
    return read(store, lambda uow: list(uow.consents.history(number)))


class ConsentContract(StoreFixture):
    """The consent ledger (:class:`~crmcore.ports.ConsentLedger`) and the use cases built on
    it: entries come back as appended, oldest first; state follows the documented rules;
    nothing but erasure removes an entry, and a merge moves them."""

    def test_entries_come_back_equal_in_history_order(self, store: Store) -> None:
        number = register(store).number
        late = _record(
            number,
            _GRANTED,
            T0 + 2 * _HOUR,
            _EMAIL,
            lawful_basis="contract",
            text_hash="sha256:0a1b",
            source="web-form",
            evidence="EV-1 ✓",
            actor="user:42",
            expires_at=T0 + dt.timedelta(days=30),
        )
        early = _record(number, _WITHDRAWN, T0 + dt.timedelta(microseconds=1))
        write(store, lambda uow: uow.consents.append(late))
        write(store, lambda uow: uow.consents.append(early))
        history = _history(store, number)
        assert history == [early, late]  # by "at", whatever the append order
        assert all(is_utc(r.at) for r in history) and is_utc(history[1].expires_at)  # type: ignore[arg-type]

    def test_ties_on_at_keep_append_order_and_the_later_entry_wins(self, store: Store) -> None:
        number = register(store).number
        first = _record(number, _GRANTED, T0)
        second = _record(number, _WITHDRAWN, T0)
        third = _record(number, _GRANTED, T0, _EMAIL)
        write(store, lambda uow: uow.consents.append_many([first, second]))
        write(store, lambda uow: uow.consents.append(third))
        assert _history(store, number) == [first, second, third]
        state = read(store, lambda uow: uow.consents.state(number, T0))
        assert not state.granted("marketing")
        assert not state.granted("marketing", "sms")
        assert state.granted("marketing", "email")  # channel-specific, appended later

    def test_state_overrides_and_expiry(self, store: Store) -> None:
        number = register(store).number
        records = [
            _record(number, _GRANTED, T0),  # every channel
            _record(number, _WITHDRAWN, T0 + _HOUR, _EMAIL),  # e-mail overridden
            _record(number, _GRANTED, T0 + 2 * _HOUR),  # every channel again, e-mail too
            _record(number, _GRANTED, T0, purpose="newsletter", expires_at=T0 + 3 * _HOUR),
        ]
        write(store, lambda uow: uow.consents.append_many(records))

        def state(at: dt.datetime) -> list[bool]:
            found = read(store, lambda uow: uow.consents.state(number, at))
            return [
                found.granted("marketing"),
                found.granted("marketing", "email"),
                found.granted("marketing", _SMS),
                found.granted("newsletter"),
                found.granted("profiling"),
            ]

        assert state(T0 - _HOUR) == [False] * 5
        assert state(T0) == [True, True, True, True, False]
        assert state(T0 + _HOUR) == [True, False, True, True, False]
        assert state(T0 + 2 * _HOUR) == [True, True, True, True, False]
        assert state(T0 + 3 * _HOUR) == [True, True, True, False, False]  # expired at 3h

    def test_appending_needs_a_live_customer_and_a_new_id(self, store: Store) -> None:
        number = register(store).number
        unknown = store.scheme.format(store.allocator.allocate())
        with pytest.raises(NotFound):
            write(store, lambda uow: uow.consents.append(_record(unknown, _GRANTED, T0)))
        kept = _record(number, _GRANTED, T0)
        write(store, lambda uow: uow.consents.append(kept))
        clash = attrs.evolve(_record(number, _WITHDRAWN, T0 + _HOUR), id=kept.id)
        fresh = _record(number, _WITHDRAWN, T0 + _HOUR)
        with pytest.raises(DuplicateError):
            write(store, lambda uow: uow.consents.append_many([fresh, clash]))
        twice = _record(number, _WITHDRAWN, T0 + _HOUR)
        with pytest.raises(DuplicateError):
            write(store, lambda uow: uow.consents.append_many([twice, twice]))
        assert _history(store, number) == [kept]  # nothing of a failed batch stays
        write(store, lambda uow: uow.customers.erase(number))
        with pytest.raises(ErasedError):
            write(store, lambda uow: uow.consents.append(_record(number, _GRANTED, T0)))

    def test_a_unit_that_rolls_back_appends_nothing(self, store: Store) -> None:
        number = register(store).number

        def fail() -> None:
            with store.unit_of_work() as uow:
                uow.consents.append(_record(number, _GRANTED, T0))
                assert [r.decision for r in uow.consents.history(number)] == [_GRANTED]
                raise Boom

        with pytest.raises(Boom):
            fail()
        assert _history(store, number) == []

    @PROPERTY_SETTINGS
    @given(
        records=st.lists(
            cst.consent_records(
                _PLACEHOLDER,
                purposes=("marketing", "loyalty.club"),
                channels=(None, _EMAIL, _SMS),
                instants=st.sampled_from(_TIES),
            ),
            min_size=1,
            max_size=8,
        ),
        batches=st.integers(1, 3),
    )
    def test_history_and_state_equal_the_reference_fold(
        self, store: Store, records: list[ConsentRecord], batches: int
    ) -> None:
        number = register(store).number
        mine = [attrs.evolve(r, customer=number, id=uuid.uuid4()) for r in records]
        size = -(-len(mine) // batches)
        for start in range(0, len(mine), size):
            part = mine[start : start + size]
            write(store, lambda uow, part=part: uow.consents.append_many(part))  # type: ignore[misc]
        assert _history(store, number) == history_order(mine)
        for as_of in (T0 - _HOUR, *_TIES, T0 + dt.timedelta(days=2)):
            state = read(store, lambda uow, at=as_of: uow.consents.state(number, at))  # type: ignore[misc]
            assert dict(state.latest) == dict(consent_state(mine, as_of).latest)
            for purpose in ("marketing", "loyalty.club"):
                for channel in (None, _EMAIL, _SMS, InteractionChannel.PHONE):
                    expected = is_granted(mine, purpose, channel, as_of)
                    assert state.granted(purpose, channel) is expected

    # -- through the use cases --------------------------------------------------------------

    def test_grant_withdraw_history_and_state_use_cases(self, store: Store) -> None:
        crm = Crm(store, clock=FixedClock(T0 + dt.timedelta(days=1)))
        ann = crm.register("Ann")
        granted = crm.grant_consent(ann.number, "marketing", source="web-form", at=T0)
        withdrawn = crm.withdraw_consent(ann.number.value, "marketing", "email")
        assert withdrawn.at == T0 + dt.timedelta(days=1)
        assert crm.consent_history(ann.number) == [granted, withdrawn]
        state = crm.consent_state(ann.number)
        assert state.granted("marketing", "sms") and not state.granted("marketing", "email")
        assert crm.consent_state(ann.number, as_of=T0).granted("marketing", "email")

    def test_update_cannot_change_the_ledger(self, store: Store) -> None:
        crm = Crm(store, clock=FixedClock(T0))
        ann = crm.register("Ann")
        crm.grant_consent(ann.number, "marketing", at=T0)
        customer = crm.get(ann.number)
        with pytest.raises(AttributeError):
            customer.consents = ()  # type: ignore[attr-defined]
        customer.organisation = "Acme"
        crm.update(customer)
        assert [r.decision for r in crm.consent_history(ann.number)] == [_GRANTED]
        assert crm.consent_state(ann.number).granted("marketing")

    def test_merge_moves_the_duplicates_entries_keeping_ids_instants_and_order(
        self, store: Store
    ) -> None:
        crm = Crm(store, clock=FixedClock(T0 + dt.timedelta(days=1)))
        keep, drop = crm.register("Ann").number, crm.register("Ann L.").number
        own = crm.grant_consent(keep, "marketing", at=T0 + _HOUR)
        moved = [
            crm.grant_consent(drop, "newsletter", "email", at=T0, evidence="EV-9"),
            crm.withdraw_consent(drop, "marketing", at=T0 + _HOUR),
        ]
        crm.merge(keep, drop)
        history = crm.consent_history(keep)
        # Ties on "at" keep the order of appending: the survivor's own entry first.
        first, last = (attrs.evolve(r, customer=keep) for r in moved)
        assert history == [first, own, last]
        assert [r.id for r in history] == [moved[0].id, own.id, moved[1].id]
        assert not crm.consent_state(keep).granted("marketing")
        with pytest.raises(ErasedError):
            crm.consent_history(drop)
        assert read(store, lambda uow: list(uow.consents.history(drop))) == []

    def test_erasure_removes_the_ledger(self, store: Store) -> None:
        crm = Crm(store, clock=FixedClock(T0))
        ann, bob = crm.register("Ann").number, crm.register("Bob").number
        crm.grant_consent(ann, "marketing", evidence="EV-7", at=T0)
        kept = crm.grant_consent(bob, "marketing", at=T0)
        crm.erase(ann)
        assert read(store, lambda uow: list(uow.consents.history(ann))) == []
        assert crm.consent_history(bob) == [kept]
        with pytest.raises(ErasedError):
            crm.grant_consent(ann, "marketing")

    def test_forget_removes_one_customers_entries_and_rolls_back(self, store: Store) -> None:
        crm = Crm(store, clock=FixedClock(T0))
        ann, bob = crm.register("Ann").number, crm.register("Bob").number
        crm.grant_consent(ann, "marketing", evidence="EV-7", at=T0)
        crm.withdraw_consent(ann, "marketing", at=T0 + dt.timedelta(days=1))
        kept = crm.grant_consent(bob, "marketing", at=T0)

        def forget_then_fail() -> None:
            with store.unit_of_work() as uow:
                assert uow.consents.forget(ann) == 2
                assert list(uow.consents.history(ann)) == []
                raise Boom

        with pytest.raises(Boom):
            forget_then_fail()
        assert len(_history(store, ann)) == 2
        with store.unit_of_work() as uow:
            assert uow.consents.forget(ann) == 2
            assert uow.consents.forget(ann) == 0
            uow.commit()
        assert _history(store, ann) == []
        assert crm.consent_history(bob) == [kept]
        # The customer lives on: a new decision starts a new ledger.
        again = crm.grant_consent(ann, "newsletter", at=T0 + dt.timedelta(days=2))
        assert crm.consent_history(ann) == [again]
