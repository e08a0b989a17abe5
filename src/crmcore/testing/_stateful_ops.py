"""The differential machine's operations on one store: running an action and classifying
its outcome by kind of crmcore error, units of work, and reading back everything the ports
offer (what :class:`~crmcore.testing.stateful.DifferentialStoreMachine` compares)."""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from crmcore.domain import CrmNumber
from crmcore.errors import (
    ConcurrencyError,
    ConfigurationError,
    CrmError,
    DuplicateError,
    ErasedError,
    InvalidTransition,
    NotFound,
    ValidationError,
)
from crmcore.ports import Store, UnitOfWork
from crmcore.testing._stateful_draws import (
    _EMAILS,
    _EXTERNAL_KEYS,
    _PHONES,
    _REFS,
    _SEGMENTS,
    _START,
)

T = TypeVar("T")

_ERROR_KINDS: tuple[type[CrmError], ...] = (
    NotFound,
    DuplicateError,
    ConcurrencyError,
    InvalidTransition,
    ValidationError,
    ConfigurationError,
    CrmError,
)


def _kind(error: CrmError) -> str:
    for kind in _ERROR_KINDS:
        if isinstance(error, kind):
            return kind.__name__
    return "CrmError"  # pragma: no cover - every CrmError is caught by the last entry


@attrs.frozen
class _Outcome:
    """What an operation did: a value, or the kind of crmcore error it raised."""

    value: Any = None
    error: str | None = None


def _attempt(action: Callable[[], Any]) -> _Outcome:
    try:
        return _Outcome(value=action())
    except CrmError as exc:
        return _Outcome(error=_kind(exc))


def _in_unit(store: Store, action: Callable[[UnitOfWork], T], *, commit: bool = True) -> T:
    with store.unit_of_work() as uow:
        result = action(uow)
        if commit:
            uow.commit()
    return result


def _rotate(pool: tuple[T, ...], turn: int | None) -> tuple[T, ...]:
    """All of ``pool`` (``turn`` is None), or the one item whose turn it is."""
    return pool if turn is None else (pool[turn % len(pool)],)


def _read_ports(
    store: Store,
    probe: list[CrmNumber],
    interaction_ids: list[uuid.UUID],
    transaction_ids: list[uuid.UUID],
    parts: set[str],
    full: bool,
    *,
    now: dt.datetime,
    steps: int,
    touched_segments: set[str],
) -> dict[str, Any]:
    """What the ports read: the details of ``probe``, and the listings and lookups of
    the ``parts`` of the store (``"profiles"``, ``"history"``, ``"segments"``).

    ``now`` is the machine's clock, ``steps`` the step count (which lookups a partial check
    takes, in turn), ``touched_segments`` the segments a partial check reads."""
    out: dict[str, Any] = {}
    mid = now - dt.timedelta(minutes=20)
    with store.unit_of_work() as uow:
        c = uow.customers
        if "profiles" in parts:
            out["count"] = c.count()
            out["numbers"] = list(c.numbers())
            if full:
                out["iter_all"] = list(c.iter_all(batch_size=3))
            # Every lookup on a full check; one of each kind, in turn, otherwise.
            turn = None if full else steps
            for email in _rotate(_EMAILS, turn):
                out[f"email {email}"] = list(c.find_by_email(email))
            for phone in _rotate(_PHONES, turn):
                out[f"phone {phone}"] = list(c.find_by_phone(phone))
            for source, external_id in _rotate(_EXTERNAL_KEYS, turn):
                out[f"external {source}/{external_id}"] = c.find_by_external_id(source, external_id)
        for n in probe:
            try:
                out[f"get {n}"] = c.get(n)
            except ErasedError:
                out[f"get {n}"] = "ErasedError"
            except NotFound:
                out[f"get {n}"] = "NotFound"
            out[f"aggregate {n}"] = _attempt(functools.partial(uow.aggregates.get, n))
            out[f"interactions {n}"] = list(uow.interactions.for_customer(n))
            out[f"transactions {n}"] = list(uow.transactions.for_customer(n))
            out[f"interactions {n} limit"] = list(
                uow.interactions.for_customer(n, limit=1, before=mid)
            )
            out[f"transactions {n} limit"] = list(
                uow.transactions.for_customer(n, limit=2, before=_START)
            )
            out[f"consents {n}"] = list(uow.consents.history(n))
            for as_of in (mid, now, _START - dt.timedelta(days=2)):
                state = uow.consents.state(n, as_of)
                out[f"consent state {n} {as_of}"] = (
                    dict(state.latest),
                    [
                        state.granted(purpose, channel)
                        for purpose in ("marketing", "loyalty.club")
                        for channel in (None, "email", "sms", "phone")
                    ],
                )
        for item_id in interaction_ids:
            out[f"interaction {item_id}"] = _attempt(
                functools.partial(uow.interactions.get, item_id)
            )
        for item_id in transaction_ids:
            out[f"transaction {item_id}"] = _attempt(
                functools.partial(uow.transactions.get, item_id)
            )
        for ref in _rotate(_REFS, None if full else steps) if "history" in parts else ():
            out[f"interaction ref {ref}"] = uow.interactions.find_by_external_ref("helpdesk", ref)
            out[f"transaction ref {ref}"] = uow.transactions.find_by_external_ref("erp", ref)
        if "segments" in parts:
            out["segments"] = list(uow.segments.list())
            for name in _SEGMENTS if full else sorted(touched_segments):
                out[f"latest {name}"] = uow.segments.latest_membership(name)
                out[f"latest {name} before"] = uow.segments.latest_membership(
                    name, before=_START + dt.timedelta(days=2)
                )
    return out
