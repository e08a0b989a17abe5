"""Encryption at rest on the SQL store (SQLite, PostgreSQL, MariaDB): nothing personal in
the clear, tampering always detected, rotation, key errors, erasure."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from tests.helpers import backend_url, unique_prefix

from crmcore import Crm
from crmcore.adapters.sqlalchemy import SqlStore
from crmcore.adapters.sqlalchemy._sealing import RowSealer
from crmcore.crypto import FieldCipher, KeyRing
from crmcore.domain import (
    Direction,
    Interaction,
    InteractionChannel,
    InteractionKind,
    PersonName,
    PostalAddress,
)
from crmcore.errors import ConfigurationError, DecryptionError
from crmcore.services import Analytics

BACKENDS = ("sqlite-file", "postgresql", "mariadb")
AT = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)

# One sentinel per personal field: none may appear in the database in the clear.
SENTINELS = {
    "given": "Zerubbabel",
    "family": "Quixtonworth",
    "display": "Zerubbabel Quixtonworth-Display",
    "email": "sentinel.qx7@example.org",
    "phone": "+442079460018",
    "line": "77 Sentinelgasse",
    "locality": "Vaduzburg-Sentinel",
    "region": "Sentinelregion",
    "postal": "SN-9431",
    "birth": "1931-07-19",
    "title": "Dr Sentinel",
    "job": "Chief Sentinel Officer",
    "org": "Sentinel Holdings",
    "attribute": "sentinel-attribute-value",
    "subject": "Sentinel complaint subject",
    "notes": "Sentinel notes: the customer said 北京 secret",
    "outcome": "Sentinel outcome text",
    "batch_notes": "Batch-sentinel notes 上海",
}


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, request.param, tmp_path)


@pytest.fixture
def prefix() -> str:
    return unique_prefix("e")


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.generate()


def _open(url: str, prefix: str, ring: KeyRing | None, **kw: Any) -> SqlStore:
    return SqlStore.from_url(url, table_prefix=prefix, keyring=ring, **kw)


@pytest.fixture
def store(url: str, prefix: str, ring: KeyRing) -> Iterator[SqlStore]:
    s = SqlStore.from_url(url, create_schema=True, table_prefix=prefix, keyring=ring)
    try:
        yield s
    finally:
        s.drop_schema()
        s.close()


def _register(crm: Crm, suffix: str = "") -> Any:
    return crm.register(
        PersonName(SENTINELS["given"] + suffix, SENTINELS["family"], SENTINELS["display"]),
        emails=[SENTINELS["email"].replace("@", suffix + "@")],
        phones=[SENTINELS["phone"]],
        addresses=[
            PostalAddress(
                "LI",
                (SENTINELS["line"],),
                SENTINELS["locality"],
                SENTINELS["region"],
                SENTINELS["postal"],
            )
        ],
        birth_date=dt.date.fromisoformat(SENTINELS["birth"]),
        title=SENTINELS["title"],
        job_title=SENTINELS["job"],
        organisation=SENTINELS["org"],
        attributes={"note": SENTINELS["attribute"]},
    )


def _interaction(number: Any, **kw: Any) -> Interaction:
    return Interaction(
        customer=number,
        occurred_at=AT,
        channel=InteractionChannel.PHONE,
        direction=Direction.INBOUND,
        kind=InteractionKind.COMPLAINT,
        **kw,
    )


def _populate(store: SqlStore) -> tuple[Crm, Any]:
    crm = Crm(store)
    customer = _register(crm)
    crm.record_interaction(
        _interaction(
            customer.number,
            subject=SENTINELS["subject"],
            notes=SENTINELS["notes"],
            outcome=SENTINELS["outcome"],
        )
    )
    crm.import_interactions(
        pa.table(
            {
                "crm_number": [customer.number.value],
                "occurred_at": pa.array([AT]),
                "channel": ["email"],
                "direction": ["inbound"],
                "kind": ["inquiry"],
                "notes": [SENTINELS["batch_notes"]],
                "external_ref": ["ext-1"],
            }
        ),
        source="erp",
    )
    return crm, customer


def _dump(store: SqlStore) -> list[tuple[str, str, Any]]:
    """Every value of every row of every crmcore table: (table, column, value)."""
    out = []
    assert store.engine is not None
    with store.engine.connect() as conn:
        for table in store.tables.all:
            for row in conn.execute(sa.select(table)).mappings():
                out.extend((table.name, key, value) for key, value in row.items())
    return out


def _leaks(store: SqlStore, sentinels: dict[str, str]) -> list[str]:
    found = []
    for table, column, value in _dump(store):
        if value is None:
            continue
        text = value if isinstance(value, str) else str(value)
        raw = value if isinstance(value, bytes) else text.encode("utf-8")
        for name, sentinel in sentinels.items():
            needles = {sentinel, sentinel.lower(), sentinel.lstrip("+")}
            for needle in needles:
                if (
                    needle in text
                    or needle.encode("utf-8") in raw
                    or needle.encode("utf-16-le") in raw
                ):
                    found.append(f"{name} in {table}.{column}")
    return found


# -- nothing personal in the clear ------------------------------------------------------------


def test_no_sentinel_appears_in_any_table(store: SqlStore) -> None:
    crm, customer = _populate(store)
    # Every read path gives the plaintext back.
    got = crm.get(customer.number)
    assert got.name.given == SENTINELS["given"]
    assert got.addresses[0].lines == (SENTINELS["line"],)
    assert got.birth_date == dt.date.fromisoformat(SENTINELS["birth"])
    assert got.attributes == {"note": SENTINELS["attribute"]}
    assert [c.number for c in crm.find_by_email(SENTINELS["email"].upper())] == [customer.number]
    assert [c.number for c in crm.find_by_phone(SENTINELS["phone"])] == [customer.number]
    with store.unit_of_work() as uow:
        notes = {i.notes for i in uow.interactions.for_customer(customer.number)}
    assert notes == {SENTINELS["notes"], SENTINELS["batch_notes"]}
    assert _leaks(store, SENTINELS) == []


def test_the_same_plaintext_encrypts_differently(store: SqlStore) -> None:
    crm = Crm(store)
    a = _register(crm, "a")
    b = _register(crm, "b")
    c = store.tables.customer_sealed
    assert store.engine is not None
    with store.engine.connect() as conn:
        sealed = {
            n: json.loads(s) for n, s in conn.execute(sa.select(c.c.customer, c.c.sealed)).all()
        }
    # Same family name, same birth date: different ciphertexts (random nonces).
    assert sealed[a.number.value]["family_name"] != sealed[b.number.value]["family_name"]
    assert sealed[a.number.value]["birth_date"] != sealed[b.number.value]["birth_date"]
    cipher = FieldCipher(KeyRing.generate())
    assert cipher.seal("same", b"ctx") != cipher.seal("same", b"ctx")


# -- tampering --------------------------------------------------------------------------------


def _stored(store: SqlStore) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Customer rows (with their ``customer_sealed`` columns) and interaction rows."""
    c, s, i = store.tables.customers, store.tables.customer_sealed, store.tables.interactions
    assert store.engine is not None
    with store.engine.connect() as conn:
        query = sa.select(c, s.c.sealed).join(s, s.c.customer == c.c.number)
        customers = [dict(r) for r in conn.execute(query).mappings()]
        interactions = [dict(r) for r in conn.execute(sa.select(i)).mappings()]
    return customers, interactions


def _flip(token: str, rng: random.Random) -> str:
    import base64

    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    bit = rng.randrange(len(raw) * 8)
    raw[bit // 8] ^= 1 << (bit % 8)
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def test_ten_thousand_tampered_ciphertexts_are_all_rejected(store: SqlStore, ring: KeyRing) -> None:
    crm = Crm(store)
    for k in range(4):
        customer = _register(crm, str(k))
        for j in range(2):
            crm.record_interaction(
                _interaction(customer.number, subject=f"s{k}{j}", notes=f"n{k}{j}", outcome="o")
            )
    customers, interactions = _stored(store)
    sealer = RowSealer(FieldCipher(ring), allow_plain=False)
    rng = random.Random(13)
    rejected = 0
    trials = 10_000
    for trial in range(trials):
        kind = trial % 4
        if kind in (0, 1):  # a customer row: bit flip, or a value from another row / field
            row = dict(rng.choice(customers))
            sealed = json.loads(row["sealed"])
            field = rng.choice(sorted(sealed))
            if kind == 0:
                sealed[field] = _flip(sealed[field], rng)
            elif rng.random() < 0.5:
                other = json.loads(
                    rng.choice([r for r in customers if r["number"] != row["number"]])["sealed"]
                )
                sealed[field] = other[field]
            else:
                sealed[field] = sealed[rng.choice([f for f in sealed if f != field])]
            row["sealed"] = json.dumps(sealed)
            opener: Any = lambda r: sealer.open_customer(r, r)  # noqa: E731 - sealed beside
        else:  # an interaction row
            row = dict(rng.choice(interactions))
            sealed = json.loads(row["sealed"])
            field = rng.choice(sorted(sealed))
            if kind == 2:
                sealed[field] = _flip(sealed[field], rng)
            elif rng.random() < 0.5:
                other = rng.choice([r for r in interactions if r["id"] != row["id"]])
                sealed[field] = json.loads(other["sealed"])[field]
            else:
                sealed[field] = sealed[rng.choice([f for f in sealed if f != field])]
            row["sealed"] = json.dumps(sealed)
            opener = sealer.open_interaction
        try:
            opened = opener(row)
        except DecryptionError:
            rejected += 1
        else:
            pytest.fail(f"tampered row was opened: {sorted(opened)}")
    assert rejected == trials


def test_tampered_rows_fail_reads_with_decryption_error(store: SqlStore) -> None:
    crm = Crm(store)
    a = _register(crm, "a")
    b = _register(crm, "b")
    crm.record_interaction(_interaction(a.number, subject="x", notes="y"))
    c, e, i = store.tables.customer_sealed, store.tables.customer_emails, store.tables.interactions
    assert store.engine is not None
    with store.engine.begin() as conn:
        # b's given name moved into a's row.
        rows = dict(conn.execute(sa.select(c.c.customer, c.c.sealed)).all())
        sa_, sb = json.loads(rows[a.number.value]), json.loads(rows[b.number.value])
        sa_["given_name"] = sb["given_name"]
        conn.execute(
            sa.update(c).where(c.c.customer == a.number.value).values(sealed=json.dumps(sa_))
        )
        # b's e-mail swapped with a's.
        mails = dict(conn.execute(sa.select(e.c.customer, e.c.sealed)).all())
        conn.execute(
            sa.update(e).where(e.c.customer == b.number.value).values(sealed=mails[a.number.value])
        )
        # An interaction written in the clear behind crmcore's back.
        conn.execute(sa.update(i).values(key_id=None, sealed=None, subject="forged"))
    with pytest.raises(DecryptionError) as caught:
        crm.get(a.number)
    assert "given_name" in str(caught.value) and "Zerub" not in str(caught.value)
    with pytest.raises(DecryptionError):
        crm.get(b.number)
    with pytest.raises(DecryptionError), store.unit_of_work() as uow:
        uow.interactions.for_customer(a.number)


# -- keys: missing, wrong, rotation -----------------------------------------------------------


def test_wrong_or_missing_keys_are_configuration_errors(
    url: str, prefix: str, ring: KeyRing, store: SqlStore
) -> None:
    _register(Crm(store))
    with pytest.raises(ConfigurationError, match="encrypted"):
        _open(url, prefix, None)
    # Same key ids, other key bytes.
    with pytest.raises(ConfigurationError, match="not the key"):
        _open(url, prefix, KeyRing.generate())
    other_index = KeyRing({"k1": ring.data_key("k1") or b""}, {"i1": bytes(32)})
    with pytest.raises(ConfigurationError, match="index key"):
        _open(url, prefix, other_index)
    with pytest.raises(ConfigurationError, match="lacks key id"):
        _open(url, prefix, KeyRing.generate("k9", "i1"))
    # The error never shows key material.
    other = KeyRing.generate()
    with pytest.raises(ConfigurationError) as caught:
        _open(url, prefix, other)
    for key in (ring.data_key("k1"), other.data_key("k1")):
        assert key is not None and key.hex() not in str(caught.value)
    assert ring.to_text().split(":")[1][:10] not in str(caught.value)


def test_a_plaintext_store_with_rows_needs_encrypt_existing_then_rotation_seals_it(
    url: str, prefix: str, ring: KeyRing
) -> None:
    plain = SqlStore.from_url(url, create_schema=True, table_prefix=prefix)
    try:
        crm = Crm(plain)
        old = _register(crm)
        crm.record_interaction(_interaction(old.number, notes=SENTINELS["notes"]))
        plain.close()
        with pytest.raises(ConfigurationError, match="encrypt_existing"):
            _open(url, prefix, ring)
        store = _open(url, prefix, ring, encrypt_existing=True)
        crm = Crm(store)
        new = _register(crm, "n")
        # Old plaintext rows and new sealed rows read side by side.
        assert crm.get(old.number).name.given == SENTINELS["given"]
        assert [c.number for c in crm.find_by_email(SENTINELS["email"])] == [old.number]
        assert crm.get(new.number).organisation == SENTINELS["org"]
        with pytest.raises(ConfigurationError, match="encrypted"):
            _open(url, prefix, None)
        report = store.rotate_keys(batch_size=1)
        assert report.complete and report.customers == 1 and report.interactions == 1
        assert _leaks(store, SENTINELS) == []
        assert [c.number for c in crm.find_by_phone(SENTINELS["phone"])] == [
            old.number,
            new.number,
        ]
        # Plaintext is no longer accepted once every row was sealed.
        assert store.engine is not None
        with store.engine.begin() as conn:
            c, sealed = store.tables.customers, store.tables.customer_sealed
            conn.execute(sa.delete(sealed).where(sealed.c.customer == old.number.value))
            conn.execute(
                sa.update(c).where(c.c.number == old.number.value).values(given_name="forged")
            )
        with pytest.raises(DecryptionError):
            crm.get(old.number)
        store.close()
        with pytest.raises(DecryptionError):
            Crm(reopened := _open(url, prefix, ring)).get(old.number)
        reopened.close()
    finally:
        cleanup = SqlStore.from_url(url, table_prefix=prefix, keyring=ring)
        cleanup.drop_schema()
        cleanup.close()


def test_rotation_is_resumable_and_the_store_stays_usable(
    url: str, prefix: str, ring: KeyRing, store: SqlStore
) -> None:
    crm = Crm(store)
    customers = [_register(crm, str(k)) for k in range(5)]
    for customer in customers:
        crm.record_interaction(_interaction(customer.number, notes=f"note {customer.number}"))
    new_ring = ring.with_data_key("k2").with_index_key("i2")
    rotating = _open(url, prefix, new_ring)
    try:
        partial = rotating.rotate_keys(batch_size=2, max_batches=1)  # interrupted after a batch
        assert not partial.complete and partial.customers == 2
        # Half rotated: old-key and new-key rows both read, look-ups find both kinds.
        for reader in (Crm(rotating), Crm(_open(url, prefix, new_ring))):
            for customer in customers:
                assert reader.get(customer.number).name.given.startswith(SENTINELS["given"])
                email = customer.emails[0].address
                assert [c.number for c in reader.find_by_email(email)] == [customer.number]
            reader.store.close()  # type: ignore[attr-defined]
        # The old ring no longer suffices: rows and records name k2 / i2 now.
        with pytest.raises(ConfigurationError, match="lacks key id"):
            _open(url, prefix, ring)
        rotating = _open(url, prefix, new_ring)
        done = rotating.rotate_keys(batch_size=2)
        assert done.complete and done.customers == 3 and done.interactions == 5
        again = rotating.rotate_keys(batch_size=2)
        assert (again.customers, again.interactions, again.complete) == (0, 0, True)
    finally:
        rotating.close()
    # Retired: a ring with only the new keys opens the store and reads every row.
    only_new = new_ring.without("k1").without("i1")
    fresh = _open(url, prefix, only_new)
    try:
        crm2 = Crm(fresh)
        for customer in customers:
            got = crm2.get(customer.number)
            assert got.emails == customer.emails and got.phones == customer.phones
            assert [c.number for c in crm2.find_by_phone(SENTINELS["phone"])] == [
                c.number for c in customers
            ]
            with fresh.unit_of_work() as uow:
                (ix,) = uow.interactions.for_customer(customer.number)
            assert ix.notes == f"note {customer.number}"
    finally:
        fresh.close()


# -- erasure, analytics, copy -----------------------------------------------------------------


def test_erasure_leaves_no_ciphertext_or_blind_index(store: SqlStore, ring: KeyRing) -> None:
    crm, customer = _populate(store)
    cipher = FieldCipher(ring)
    index = cipher.blind_index("email", SENTINELS["email"])
    crm.erase(customer.number)
    values = [(t, col, v) for t, col, v in _dump(store) if v is not None]
    assert not [x for x in values if x[1] in ("sealed", "key_id", "index_key_id")]
    assert not [x for x in values if isinstance(x[2], str) and index in x[2]]
    # No value left that opens as a ciphertext (the key check in settings is no data).
    assert not [
        x
        for x in values
        if isinstance(x[2], str) and x[0] != store.tables.settings.name and x[2].startswith("AQ")
    ]


def test_analytics_agree_with_a_plaintext_store(url: str, store: SqlStore) -> None:
    from crmcore.domain import Money, SalesChannel, Transaction, TransactionKind

    plain = SqlStore.from_url(url, create_schema=True, table_prefix=unique_prefix("p"))
    try:
        for target in (store, plain):
            crm = Crm(target)
            for k in range(6):
                c = _register(crm, str(k))
                for j in range(k + 1):
                    crm.record_transaction(
                        Transaction(
                            customer=c.number,
                            occurred_at=AT - dt.timedelta(days=10 * j + k),
                            kind=TransactionKind.PURCHASE,
                            total=Money(f"{10 + j}.00", "USD"),
                            channel=SalesChannel.ONLINE,
                        )
                    )
        for engine in ("sql", "numpy"):
            a = Analytics(Crm(store)).rfm(as_of=AT, engine=engine)  # type: ignore[arg-type]
            b = Analytics(Crm(plain)).rfm(as_of=AT, engine=engine)  # type: ignore[arg-type]
            assert a.counts() == b.counts()
            assert list(a.segments()) == list(b.segments())
    finally:
        plain.drop_schema()
        plain.close()


def test_copy_out_of_an_encrypted_store_reads_plaintext(store: SqlStore, tmp_path: Path) -> None:
    from crmcore.backup import copy

    _, customer = _populate(store)
    target = SqlStore.from_url(f"sqlite:///{tmp_path / 'copy.sqlite'}", create_schema=True)
    try:
        copy(store, target)
        got = Crm(target).get(customer.number)
        assert got.name.given == SENTINELS["given"]
        with target.unit_of_work() as uow:
            notes = {i.notes for i in uow.interactions.for_customer(customer.number)}
        assert notes == {SENTINELS["notes"], SENTINELS["batch_notes"]}
    finally:
        target.close()


def test_missing_cryptography_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)
    with pytest.raises(ConfigurationError, match=r"pip install crmcore\[crypto\]"):
        FieldCipher(KeyRing.generate())
    with pytest.raises(ConfigurationError, match=r"pip install crmcore\[crypto\]"):
        SqlStore.from_url("sqlite://", create_schema=True, keyring=KeyRing.generate())


def test_record_ids_are_the_associated_data_of_interactions(store: SqlStore) -> None:
    crm = Crm(store)
    customer = _register(crm)
    rid = uuid.uuid4()
    crm.record_interaction(_interaction(customer.number, notes="n", id=rid))
    with store.unit_of_work() as uow:
        assert uow.interactions.get(rid).notes == "n"


def test_lookups_stay_indexed_queries(tmp_path: Path, ring: KeyRing) -> None:
    """On SQLite, the plan of the blind-index look-up searches the look-up column's index."""
    store = SqlStore.from_url(
        f"sqlite:///{tmp_path / 'ix.sqlite'}", create_schema=True, keyring=ring
    )
    try:
        crm = Crm(store)
        _register(crm)
        seen: list[tuple[str, Any]] = []

        def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            seen.append((statement, params))

        assert store.engine is not None
        sa.event.listen(store.engine, "before_cursor_execute", capture)
        try:
            assert len(crm.find_by_email(SENTINELS["email"])) == 1
            assert len(crm.find_by_phone(SENTINELS["phone"])) == 1
        finally:
            sa.event.remove(store.engine, "before_cursor_execute", capture)
        plans = []
        with store.engine.connect() as conn:
            for statement, params in seen:
                if "lookup_key IN" in statement or "e164 IN" in statement:
                    rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all()
                    plans.append(" ".join(str(r[-1]) for r in rows))
        assert len(plans) == 2
        assert "ix_crm_customer_emails_lookup_key" in plans[0]
        assert "ix_crm_customer_phones_e164" in plans[1]
        # No plaintext in what was sent: the look-up binds blind indexes only.
        sent = repr([p for _, p in seen])
        assert SENTINELS["email"] not in sent and SENTINELS["phone"] not in sent
    finally:
        store.close()
