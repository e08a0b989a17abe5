"""No personal data in a crmcore error's traceback: the driver's exception is not chained.

A driver exception's text (MariaDB's ``Duplicate entry '...'``, PostgreSQL's ``DETAIL: Key
(...)=(...)``) and SQLAlchemy's wrapper around it (``[parameters: ...]``, the whole row)
hold the refused row. crmcore's errors carry a ``DriverError`` summary as ``__cause__``
instead, so ``logger.exception(error)`` logs identifiers only.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pymysql
import pytest
import sqlalchemy as sa
from tests.helpers import backend_url, sql_store, unique_prefix

from crmcore import Crm, CrmError, DuplicateError
from crmcore.adapters.sqlalchemy import DriverError, SqlStore
from crmcore.adapters.sqlalchemy._errors import translated
from crmcore.clock import FixedClock
from crmcore.domain import Consent, PostalAddress

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
# Sentinel personal values: none may appear anywhere in a rendered traceback.
SENTINELS = ("Zebediah", "Quuxley", "1911-11-11", "Sentinelgasse", "S3NT1NEL", "zq@example.org")
RACE_ROUNDS = 4
NAME = "Zebediah Quuxley"  # passed by name: a traceback quotes the source lines


def _person(crm: Crm, external_id: str) -> dict[str, Any]:
    return {
        "emails": ["zq@example.org"],
        "birth_date": dt.date(1911, 11, 11),
        "addresses": [PostalAddress(country="AT", lines=("Sentinelgasse 7",), locality="Wien")],
        "attributes": {"note": "S3NT1NEL"},
        "consents": [Consent(purpose="marketing", channel="email", granted=True, at=NOW)],
        "source": "erp",
        "external_id": external_id,
    }


def _rendered(error: BaseException) -> str:
    text = "".join(traceback.format_exception(error))
    seen: BaseException | None = error
    while seen is not None:  # also what a handler reading the chain by hand would print
        text += repr(seen) + str(seen)
        seen = seen.__cause__ or seen.__context__
    return text


def _assert_clean(error: BaseException) -> None:
    text = _rendered(error)
    for value in SENTINELS:
        assert value not in text, value
    chain: BaseException | None = error
    while chain is not None:
        assert not isinstance(chain, sa.exc.SQLAlchemyError | pymysql.Error), type(chain)
        assert type(chain).__module__.split(".")[0] not in ("psycopg", "sqlite3", "pymysql")
        chain = chain.__cause__ or chain.__context__


@pytest.fixture(params=["sqlite-file", "postgresql", "mariadb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    with sql_store(backend_url(request, request.param, tmp_path), unique_prefix("pv", 6)) as s:
        yield s


def test_concurrent_registrations_raise_duplicate_errors_without_personal_data(
    store: SqlStore,
) -> None:
    crm = Crm(store, clock=FixedClock(NOW))
    threads = 6
    errors: list[DuplicateError] = []
    for round_ in range(RACE_ROUNDS):
        barrier = threading.Barrier(threads)

        def register(_: int, key: str = f"Z-{round_}", start: Any = barrier) -> None:
            fields = _person(crm, key)
            start.wait()
            try:
                crm.register(NAME, **fields)
            except DuplicateError as error:
                errors.append(error)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(register, range(threads)))
        assert crm.numbers_by_external_id("erp", [f"Z-{round_}"])
    assert len(errors) == RACE_ROUNDS * (threads - 1)
    for error in errors:
        _assert_clean(error)


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_unique_violation_from_the_database_chains_only_a_summary(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> None:
    """Deterministically through the database's unique index: the first registration's unit
    is open (its row inserted, not committed) when the second one inserts the same key, which
    waits on the index and then fails in the driver."""
    with sql_store(backend_url(request, backend, tmp_path), unique_prefix("pv", 6)) as store:
        crm = Crm(store, clock=FixedClock(NOW))
        unregistered = {k: v for k, v in _person(crm, "Z-1").items() if k != "consents"}
        first = crm.new_customer(NAME, **unregistered)
        caught: list[BaseException] = []

        def second() -> None:
            try:
                crm.register(NAME, **_person(crm, "Z-1"))
            except CrmError as error:
                caught.append(error)

        with store.unit_of_work() as uow:
            uow.customers.add(
                first.__class__(**{**_fields(first), "number": crm.store.scheme.format(10**8)})
            )
            worker = threading.Thread(target=second)
            worker.start()
            time.sleep(1.0)  # the second registration now waits on the unique index
            uow.commit()
        worker.join(30)
        assert len(caught) == 1
        error = caught[0]
        assert isinstance(error, DuplicateError)
        assert isinstance(error.__cause__, DriverError)
        assert error.__cause__.code is not None
        assert error.__context__ is None
        _assert_clean(error)


def _fields(customer: Any) -> dict[str, Any]:
    import attrs

    return {f.name: getattr(customer, f.name) for f in attrs.fields(type(customer))}


@pytest.mark.parametrize(
    ("cls", "orig"),
    [
        (sa.exc.IntegrityError, pymysql.err.IntegrityError(1062, "Duplicate entry 'S3NT1NEL'")),
        (sa.exc.DataError, pymysql.err.DataError(1406, "Data too long: 'Zebediah'")),
        (sa.exc.OperationalError, pymysql.err.OperationalError(1213, "Deadlock 'Quuxley'")),
        (sa.exc.ProgrammingError, pymysql.err.ProgrammingError(1064, "near 'zq@example.org'")),
    ],
)
def test_every_translated_error_drops_the_driver_exception(
    cls: type[sa.exc.DBAPIError], orig: Exception
) -> None:
    with pytest.raises(CrmError) as info, translated("customer"):
        raise cls("INSERT INTO customers VALUES (?)", {"birth": "1911-11-11"}, orig)
    error = info.value
    assert isinstance(error.__cause__, DriverError)
    assert error.__cause__.code == f"MySQL error {orig.args[0]}"
    assert error.__context__ is None
    _assert_clean(error)
