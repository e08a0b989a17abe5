"""``FieldCipher``: the ciphertext layout, nonces, associated data, blind indexes."""

from __future__ import annotations

import base64

import pytest

from crmcore.crypto import (
    FORMAT_GCM,
    FORMAT_GCM_SIV,
    INDEX_BYTES,
    FieldCipher,
    KeyRing,
    associated_data,
)
from crmcore.errors import DecryptionError

RING = KeyRing.generate()
CTX = associated_data("C000000019", "customers", "given_name")


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def test_layout_is_format_key_id_nonce_ciphertext_and_tag() -> None:
    cipher = FieldCipher(RING)
    raw = _raw(cipher.seal("Ann", CTX))
    assert raw[0] in (FORMAT_GCM_SIV, FORMAT_GCM)
    assert raw[1] == 2 and raw[2:4] == b"k1"
    assert len(raw) == 4 + 12 + len(b"Ann") + 16
    assert FieldCipher.key_id_of(cipher.seal("x", CTX)) == "k1"


def test_nonces_are_random_and_context_is_bound() -> None:
    cipher = FieldCipher(RING)
    tokens = {cipher.seal("same", CTX) for _ in range(200)}
    assert len(tokens) == 200
    nonces = {_raw(t)[4:16] for t in tokens}
    assert len(nonces) == 200
    token = tokens.pop()
    assert cipher.open(token, CTX, "customers.given_name") == "same"
    for other in (
        associated_data("C000000027", "customers", "given_name"),
        associated_data("C000000019", "customers", "family_name"),
        associated_data("C000000019", "interactions", "given_name"),
        associated_data("C000000019", "customers", "given_name", "1"),
    ):
        with pytest.raises(DecryptionError, match="does not authenticate"):
            cipher.open(token, other, "customers.given_name")


def test_unknown_key_wrong_key_and_garbage_are_decryption_errors() -> None:
    token = FieldCipher(RING).seal("secret", CTX)
    with pytest.raises(DecryptionError, match="not in the key ring"):
        FieldCipher(KeyRing.generate("k9")).open(token, CTX, "t.f")
    with pytest.raises(DecryptionError, match="does not authenticate") as caught:
        FieldCipher(KeyRing.generate()).open(token, CTX, "t.f")
    assert "secret" not in str(caught.value)
    for garbage in ("", "!!!", "AQ", token[:20], "secret in the clear"):
        with pytest.raises(DecryptionError):
            FieldCipher(RING).open(garbage, CTX, "t.f")


def test_a_rotated_ring_reads_both_keys() -> None:
    old = FieldCipher(RING).seal("old", CTX)
    new_ring = RING.with_data_key("k2")
    cipher = FieldCipher(new_ring)
    new = cipher.seal("new", CTX)
    assert FieldCipher.key_id_of(new) == "k2"
    assert (cipher.open(old, CTX, "t.f"), cipher.open(new, CTX, "t.f")) == ("old", "new")


def test_blind_indexes_are_keyed_truncated_and_per_kind() -> None:
    cipher = FieldCipher(RING)
    index = cipher.blind_index("email", "ann@example.com")
    key_id, _, digest = index.partition(":")
    assert key_id == "i1" and len(digest) == 2 * INDEX_BYTES
    assert index == cipher.blind_index("email", "ann@example.com")
    assert index != cipher.blind_index("phone", "ann@example.com")
    assert index != FieldCipher(KeyRing.generate()).blind_index("email", "ann@example.com")
    both = FieldCipher(RING.with_index_key("i2")).blind_indexes("email", "ann@example.com")
    assert both[1] == index and both[0].startswith("i2:")
    assert "example" not in repr(cipher) and "ann" not in index


def test_key_checks_tell_a_wrong_key() -> None:
    cipher = FieldCipher(RING)
    check = cipher.key_check("k1")
    assert cipher.verify_key("k1", check)
    assert not FieldCipher(KeyRing.generate()).verify_key("k1", check)
