"""Instants as int64 microseconds since 1970-01-01T00:00:00Z, for columnar storage.

Exact both ways for every aware datetime crmcore accepts (Python datetimes have microsecond
resolution), so columnar analytics and object reads agree to the microsecond.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_US: Final = dt.timedelta(microseconds=1)
MICROS_PER_DAY: Final = 86_400_000_000

NONE_MAX: Final = 2**63 - 1
"""Sentinel for "no instant" in a column where the minimum is taken (first purchase)."""
NONE_MIN: Final = -(2**63)
"""Sentinel for "no instant" in a column where the maximum is taken (last purchase)."""


def to_us(value: dt.datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    return (value - EPOCH) // _ONE_US


def from_us(value: int) -> dt.datetime:
    """The aware UTC datetime of a microsecond count."""
    return EPOCH + dt.timedelta(microseconds=int(value))


def from_us_or_none(value: int) -> dt.datetime | None:
    """Like :func:`from_us`, mapping both sentinels to ``None``."""
    if value in (NONE_MAX, NONE_MIN):
        return None
    return from_us(value)
