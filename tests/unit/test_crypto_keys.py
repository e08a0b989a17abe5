"""``KeyRing``: building, the text form, and never showing a key (standard library only)."""

from __future__ import annotations

import base64
import pickle

import pytest

from crmcore.crypto import KeyRing
from crmcore.errors import ConfigurationError

K1, K2, I1 = bytes(range(32)), bytes(range(1, 33)), bytes(range(2, 34))


def _b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def test_the_first_key_of_each_set_is_active() -> None:
    ring = KeyRing({"k2": K2, "k1": K1}, {"i1": I1})
    assert (ring.active_key_id, ring.active_index_key_id) == ("k2", "i1")
    assert ring.key_ids == ("k2", "k1")
    assert ring.data_key("k1") == K1 and ring.data_key("k9") is None
    assert KeyRing({"k2": K2, "k1": K1}, {"i1": I1}, active="k1").active_key_id == "k1"


def test_text_form_round_trips_and_lists_the_active_key_first() -> None:
    text = f"data=k2:{_b64(K2)},k1:{_b64(K1)}=;index=i1:{_b64(I1)}"
    ring = KeyRing.from_text(text)
    assert ring == KeyRing({"k2": K2, "k1": K1}, {"i1": I1})
    assert KeyRing.from_text(ring.to_text()) == ring


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    ring = KeyRing.generate()
    monkeypatch.setenv("MY_RING", ring.to_text())
    assert KeyRing.from_env("MY_RING") == ring
    monkeypatch.delenv("MY_RING")
    with pytest.raises(ConfigurationError, match="MY_RING"):
        KeyRing.from_env("MY_RING")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "data=<id>"),
        (f"data=k1:{_b64(K1)}", "no index section"),
        (f"data=k1:{_b64(K1[:16])};index=i1:{_b64(I1)}", "32 bytes"),
        (f"data=k1:{_b64(K1)}!;index=i1:{_b64(I1)}", "base64"),
        (f"data=k1{_b64(K1)};index=i1:{_b64(I1)}", "<id>:<base64 key>"),
        (f"data=k 1:{_b64(K1)};index=i1:{_b64(I1)}", "key id"),
        (f"data=k1:{_b64(K1)},k1:{_b64(K2)};index=i1:{_b64(I1)}", "twice"),
        (f"data=toolongid:{_b64(K1)};index=i1:{_b64(I1)}", "1 to 8"),
    ],
)
def test_malformed_text_is_refused_without_quoting_a_key(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        KeyRing.from_text(text)
    for key in (K1, K2, I1):
        assert _b64(key)[:12] not in str(caught.value)


def test_keys_never_show() -> None:
    ring = KeyRing.generate()
    key = ring.data_key("k1")
    assert key is not None
    for text in (repr(ring), str(ring), f"{ring}"):
        assert "k1" in text and _b64(key) not in text and key.hex() not in text
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(ring)


def test_adding_and_retiring_keys() -> None:
    ring = KeyRing.generate()
    rotated = ring.with_data_key("k2").with_index_key("i2")
    assert rotated.key_ids == ("k2", "k1") and rotated.index_key_ids == ("i2", "i1")
    retired = rotated.without("k1").without("i1")
    assert retired.key_ids == ("k2",) and retired.index_key_ids == ("i2",)
    with pytest.raises(ConfigurationError, match="active"):
        retired.without("k2")
    with pytest.raises(ConfigurationError, match="not in the ring"):
        KeyRing({"k1": K1}, {"i1": I1}, active="k3")
