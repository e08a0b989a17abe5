"""Which stored values an encrypted SQL store seals, and how rows are sealed and opened.

One :class:`RowSealer` per store, given to every unit of work through its transaction
context (``None`` for a plaintext store). Every write path seals the rows it built
(``_mapping`` for one entity, ``_batchcolumns`` for a batch) before they reach the database
and every read path opens them before the entity is built, so the row mapping itself stays
the same for both kinds of store.

Sealed (one AEAD per field, every field always present, a ``null`` sealed too, so a removed
or swapped value is detected):

* ``customers``: :data:`CUSTOMER_FIELDS` (names, birth date, title, job title,
  organisation, postal addresses, custom attributes), as a JSON object in the customer's
  ``customer_sealed`` row (beside the key ids; those ``customers`` columns are NULL);
* ``customer_emails``/``customer_phones``: the address or number, into ``sealed``; the
  look-up column (``lookup_key``, ``e164``) then holds the blind index;
* ``interactions``: :data:`INTERACTION_FIELDS` (subject, notes, outcome), into ``sealed``.

Not sealed, because analytics, uniqueness or the services need them in the clear and they
are not free personal text: the CRM number, gender, stage and its history, preferred
channel, owner, source and external id, tags, consents, the analytics mirrors ``country``
and ``birth_year``, instants, amounts, transaction lines.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

from crmcore.crypto import FieldCipher, associated_data
from crmcore.errors import DecryptionError

__all__ = ["CUSTOMER_FIELDS", "INTERACTION_FIELDS", "RowSealer", "record_hex"]

CUSTOMER_FIELDS: Final = (
    "given_name",
    "family_name",
    "display_name",
    "birth_date",
    "title",
    "job_title",
    "organisation",
    "addresses",
    "attributes",
)
"""The personal columns of ``customers`` an encrypted store seals."""
INTERACTION_FIELDS: Final = ("subject", "notes", "outcome")
"""The free-text columns of ``interactions`` an encrypted store seals."""


def record_hex(value: object) -> str:
    """A record id as the 32 lower-case hex digits every dialect can give back."""
    if isinstance(value, uuid.UUID):
        return value.hex
    return str(value).replace("-", "").lower()


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class RowSealer:
    """Seals and opens the rows of an encrypted store.

    Args:
        cipher: the store's field cipher.
        allow_plain: plaintext rows (no key id) may still be read: the store was encrypted
            in place and a rotation has not sealed every row yet. Otherwise a plaintext row
            is refused (someone wrote it behind crmcore's back).
    """

    __slots__ = ("allow_plain", "cipher")

    def __init__(self, cipher: FieldCipher, *, allow_plain: bool) -> None:
        self.cipher = cipher
        self.allow_plain = allow_plain

    def __repr__(self) -> str:
        return f"RowSealer({self.cipher!r}, allow_plain={self.allow_plain})"

    # -- customers ----------------------------------------------------------------------------

    def seal_customer(
        self,
        row: dict[str, Any],
        emails: Sequence[dict[str, Any]],
        phones: Sequence[dict[str, Any]],
    ) -> dict[str, Any]:
        """Seal a customer's rows as ``customer_rows`` built them (in place); return the
        customer's ``customer_sealed`` row."""
        cipher = self.cipher
        number = row["number"]
        sealed: dict[str, str] = {}
        for field in CUSTOMER_FIELDS:
            value = row[field]
            if isinstance(value, dt.date):
                value = value.isoformat()
            sealed[field] = cipher.seal(_dumps(value), associated_data(number, "customers", field))
            row[field] = None
        for e in emails:
            e["sealed"] = cipher.seal(
                e["address"],
                associated_data(number, "customer_emails", "address", str(e["position"])),
            )
            e["lookup_key"] = cipher.blind_index("email", e["lookup_key"])
            e["address"] = ""
        for p in phones:
            p["sealed"] = cipher.seal(
                p["e164"], associated_data(number, "customer_phones", "e164", str(p["position"]))
            )
            p["e164"] = cipher.blind_index("phone", p["e164"])
        return {
            "customer": number,
            "sealed": _dumps(sealed),
            "key_id": cipher.active_key_id,
            "index_key_id": cipher.active_index_key_id,
        }

    def open_customer(
        self, row: Mapping[str, Any], sealed_row: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """The customer row with the fields of its ``customer_sealed`` row opened (a
        plaintext customer, without one, as it is)."""
        out = dict(row)
        number = out["number"]
        if sealed_row is None:
            if not self.allow_plain:
                raise DecryptionError(f"customers: the row of {number} is not encrypted")
            return out
        try:
            sealed = json.loads(sealed_row["sealed"])
            if not isinstance(sealed, dict):
                raise TypeError
        except (TypeError, ValueError):
            raise DecryptionError(
                f"customers: the sealed fields of {number} are malformed"
            ) from None
        cipher = self.cipher
        for field in CUSTOMER_FIELDS:
            token = sealed.get(field)
            if not isinstance(token, str):
                raise DecryptionError(f"customers.{field}: the sealed value of {number} is missing")
            where = f"customers.{field}"
            value = json.loads(
                cipher.open(token, associated_data(number, "customers", field), where)
            )
            if field == "birth_date" and value is not None:
                value = dt.date.fromisoformat(value)
            out[field] = value
        return out

    def open_email(self, number: str, row: Mapping[str, Any], *, sealed_parent: bool) -> str:
        """The address of an e-mail row of customer ``number``."""
        return self._open_child(
            number, row, "customer_emails", "address", sealed_parent=sealed_parent
        )

    def open_phone(self, number: str, row: Mapping[str, Any], *, sealed_parent: bool) -> str:
        """The E.164 number of a phone row of customer ``number``."""
        return self._open_child(number, row, "customer_phones", "e164", sealed_parent=sealed_parent)

    def _open_child(
        self, number: str, row: Mapping[str, Any], table: str, field: str, *, sealed_parent: bool
    ) -> str:
        token = row["sealed"]
        if token is None:
            if sealed_parent or not self.allow_plain:
                raise DecryptionError(f"{table}: a row of {number} is not encrypted")
            return str(row[field])
        context = associated_data(number, table, field, str(row["position"]))
        return self.cipher.open(token, context, f"{table}.{field}")

    def email_keys(self, lookup_key: str) -> list[str]:
        """What ``customer_emails.lookup_key`` may hold for this normalised address."""
        keys = self.cipher.blind_indexes("email", lookup_key)
        return [*keys, lookup_key] if self.allow_plain else keys

    def phone_keys(self, e164: str) -> list[str]:
        """What ``customer_phones.e164`` may hold for this number."""
        keys = self.cipher.blind_indexes("phone", e164)
        return [*keys, e164] if self.allow_plain else keys

    # -- interactions -------------------------------------------------------------------------

    def seal_interaction(self, row: dict[str, Any]) -> None:
        """Seal an interaction row as ``interaction_row`` built it (in place)."""
        number, rid = row["customer"], record_hex(row["id"])
        row["sealed"] = self.seal_interaction_fields(
            number, rid, [row[f] for f in INTERACTION_FIELDS]
        )
        for field in INTERACTION_FIELDS:
            row[field] = None
        row["key_id"] = self.cipher.active_key_id

    def seal_interaction_fields(self, number: str, rid: str, values: Sequence[Any]) -> str:
        """The ``sealed`` value of an interaction from its subject, notes and outcome."""
        cipher = self.cipher
        return _dumps(
            {
                field: cipher.seal(
                    _dumps(value), associated_data(number, "interactions", field, rid)
                )
                for field, value in zip(INTERACTION_FIELDS, values, strict=True)
            }
        )

    def open_interaction(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The interaction row with subject, notes and outcome opened."""
        out = dict(row)
        opened = self.open_interaction_fields(
            out["customer"],
            record_hex(out["id"]),
            out.get("key_id"),
            out.get("sealed"),
            [out[f] for f in INTERACTION_FIELDS],
        )
        out.update(zip(INTERACTION_FIELDS, opened, strict=True))
        return out

    def open_interaction_fields(
        self, number: str, rid: str, key_id: str | None, sealed: str | None, plain: Sequence[Any]
    ) -> list[Any]:
        """Subject, notes and outcome of a stored interaction (``plain``: the plain columns)."""
        if key_id is None:
            if not self.allow_plain:
                raise DecryptionError(f"interactions: a row of {number} is not encrypted")
            return list(plain)
        try:
            tokens = json.loads(sealed) if isinstance(sealed, str) else None
            if not isinstance(tokens, dict):
                raise TypeError
        except (TypeError, ValueError):
            raise DecryptionError(
                f"interactions: the sealed fields of {number} are malformed"
            ) from None
        out: list[Any] = []
        for field in INTERACTION_FIELDS:
            token = tokens.get(field)
            if not isinstance(token, str):
                raise DecryptionError(f"interactions.{field}: the sealed value is missing")
            context = associated_data(number, "interactions", field, rid)
            out.append(json.loads(self.cipher.open(token, context, f"interactions.{field}")))
        return out
