"""The segment repository's part of the contract."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from crmcore.domain import (
    Segment,
    SegmentMembership,
)
from crmcore.errors import (
    DuplicateError,
    NotFound,
)
from crmcore.ports import Store, UnitOfWork
from crmcore.testing.contract._support import (
    T0,
    StoreFixture,
    is_utc,
    read,
    register,
    write,
)


class SegmentRepositoryContract(StoreFixture):
    """Segments and their membership runs."""

    # -- segments ----------------------------------------------------------------------------

    def test_segments_save_replace_list_and_delete(self, store: Store) -> None:
        write(store, lambda uow: uow.segments.save(Segment("zeta", "frequency >= 3")))
        write(store, lambda uow: uow.segments.save(Segment("alpha", "recency_days <= 30")))
        replaced = Segment("zeta", "frequency >= 5", description="Frequent buyers ✓")
        write(store, lambda uow: uow.segments.save(replaced))
        listed = read(store, lambda uow: list(uow.segments.list()))
        assert [s.name for s in listed] == ["alpha", "zeta"]
        assert read(store, lambda uow: uow.segments.get("zeta")) == replaced
        write(store, lambda uow: uow.segments.delete("alpha"))
        with pytest.raises(NotFound):
            read(store, lambda uow: uow.segments.get("alpha"))
        with pytest.raises(NotFound):
            write(store, lambda uow: uow.segments.delete("alpha"))
        assert [s.name for s in read(store, lambda uow: list(uow.segments.list()))] == ["zeta"]

    def test_a_required_consent_is_stored_with_the_segment(self, store: Store) -> None:
        audience = Segment("mailing", "frequency >= 1", requires_consent=("marketing", "email"))
        one: Any = ("loyalty.club",)  # a purpose alone: every channel
        everywhere = Segment("everywhere", "frequency >= 1", requires_consent=one)
        write(store, lambda uow: uow.segments.save(audience))
        write(store, lambda uow: uow.segments.save(everywhere))
        assert read(store, lambda uow: uow.segments.get("mailing")) == audience
        assert read(store, lambda uow: list(uow.segments.list())) == [everywhere, audience]
        assert everywhere.requires_consent == ("loyalty.club", None)
        assert audience.effective_rule == "(frequency >= 1) and consented('marketing', 'email')"
        plain = Segment("mailing", "frequency >= 2")
        write(store, lambda uow: uow.segments.save(plain))  # replaced: no consent required
        assert read(store, lambda uow: uow.segments.get("mailing")) == plain

    def test_membership_runs_latest_before_and_duplicates(self, store: Store) -> None:
        a, b = register(store).number, register(store).number
        write(store, lambda uow: uow.segments.save(Segment("vip", "frequency >= 3")))
        runs = [
            SegmentMembership("vip", T0 + dt.timedelta(days=d), members)
            for d, members in ((2, frozenset({a, b})), (0, frozenset({a})), (1, frozenset()))
        ]
        for run in runs:
            with store.unit_of_work() as uow:
                uow.segments.save_membership(run)
                uow.commit()

        def latest(uow: UnitOfWork, before: dt.datetime | None = None) -> Any:
            return uow.segments.latest_membership("vip", before=before)

        assert read(store, latest) == runs[0]
        assert read(store, lambda uow: latest(uow, T0 + dt.timedelta(days=2))) == runs[2]
        assert read(store, lambda uow: latest(uow, T0 + dt.timedelta(hours=1))) == runs[1]
        assert read(store, lambda uow: latest(uow, T0)) is None
        shifted = (T0 + dt.timedelta(days=1, microseconds=1)).astimezone(
            dt.timezone(dt.timedelta(hours=9))
        )
        assert read(store, lambda uow: latest(uow, shifted)) == runs[2]
        with pytest.raises(DuplicateError):
            write(
                store,
                lambda uow: uow.segments.save_membership(
                    SegmentMembership("vip", T0, frozenset({b}))
                ),
            )
        with pytest.raises(NotFound):
            write(
                store,
                lambda uow: uow.segments.save_membership(
                    SegmentMembership("nope", T0, frozenset())
                ),
            )
        assert read(store, lambda uow: uow.segments.latest_membership("nope")) is None
        # Deleting a segment deletes its runs.
        write(store, lambda uow: uow.segments.delete("vip"))
        write(store, lambda uow: uow.segments.save(Segment("vip", "frequency >= 3")))
        assert read(store, latest) is None

    def test_runs_including_a_customer(self, store: Store) -> None:
        a, b = register(store).number, register(store).number
        with store.unit_of_work() as uow:
            for name in ("zeta", "alpha"):
                uow.segments.save(Segment(name, "frequency >= 3"))
            uow.commit()
        later = T0 + dt.timedelta(days=1, microseconds=7)
        for run in (
            SegmentMembership("zeta", later, frozenset({a})),
            SegmentMembership("zeta", T0, frozenset({a, b})),
            SegmentMembership("alpha", later, frozenset({b})),
            SegmentMembership("alpha", T0, frozenset({a})),
        ):
            with store.unit_of_work() as uow:
                uow.segments.save_membership(run)
                uow.commit()

        def runs(number: Any) -> Any:
            return read(store, lambda uow: list(uow.segments.runs_including(number)))

        assert runs(a) == [("alpha", T0), ("zeta", T0), ("zeta", later)]
        assert runs(b) == [("alpha", later), ("zeta", T0)]
        assert all(is_utc(at) for _, at in runs(a))
        nobody = register(store).number
        assert runs(nobody) == []
        # Erasure deletes the customer's memberships; the others' stay.
        write(store, lambda uow: uow.customers.erase(a))
        assert runs(a) == []
        assert runs(b) == [("alpha", later), ("zeta", T0)]
