"""Purchase periods: the ``(x, t_x, T)`` summary the BG/NBD and Gamma-Gamma models are fitted on.

The models count repeat *purchase periods*, not order rows: two orders on one day are one
purchase occasion (the way Fader and Hardie count the CDNOW log, and ``lifetimes``'
``summary_data_from_transaction_data``). With the period a local calendar day (or week) in a
time zone the host chooses:

- ``x`` = the number of distinct periods with a purchase, minus one (the first);
- ``t_x`` = the last such period minus the first, in periods;
- ``T`` = the period of ``as_of`` (or of the calibration end) minus the first, in periods;
- ``m`` = the mean value of the repeat periods, each period's purchases summed (the first
  period is left out, as the Gamma-Gamma model expects).

Free purchases (total 0) count as purchase occasions; refunds do not (a refund is not a
purchase occasion, and the spend model describes what customers pay, not what they return).
Weeks start on Monday.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Final, Literal

import attrs
import numpy as np
import numpy.typing as npt

from crmcore._epoch import MICROS_PER_DAY, to_us
from crmcore.errors import ValidationError

__all__ = ["PERIODS", "Period", "RepeatSummary", "local_periods", "summarise_purchases"]

FloatArray = npt.NDArray[np.float64]
Int64Array = npt.NDArray[np.int64]
Period = Literal["day", "week"]
PERIODS: Final[dict[str, int]] = {"day": 1, "week": 7}
_QUARTER_HOUR_US: Final = 900 * 1_000_000
# 1970-01-01 was a Thursday: shifting by three days makes week boundaries fall on Mondays.
_MONDAY_SHIFT: Final = 3


def _zone(tz: str | dt.tzinfo) -> dt.tzinfo:
    if isinstance(tz, dt.tzinfo):
        return tz
    if tz in ("UTC", "Etc/UTC"):
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError) as error:
        raise ValidationError("tz", tz, "is not a known IANA time zone") from error


def _offsets_us(instants_us: Int64Array, zone: dt.tzinfo) -> Int64Array:
    """Each instant's UTC offset in ``zone``, in microseconds.

    Offsets change only at transitions, which the tz database places on quarter-hour
    boundaries, so one lookup per distinct quarter-hour (at most 35,000 a year) is exact.
    """
    if isinstance(zone, dt.timezone):  # a fixed offset (UTC included): no transitions
        fixed = _offset_us(zone.utcoffset(None))
        return np.full(len(instants_us), fixed, dtype=np.int64)
    quarters, inverse = np.unique(instants_us // _QUARTER_HOUR_US, return_inverse=True)
    offsets = np.fromiter(
        (
            _offset_us(dt.datetime.fromtimestamp(int(q) * 900, tz=zone).utcoffset())
            for q in quarters
        ),
        dtype=np.int64,
        count=len(quarters),
    )
    result: Int64Array = offsets[inverse.reshape(-1)]
    return result


def _offset_us(offset: dt.timedelta | None) -> int:
    return 0 if offset is None else offset // dt.timedelta(microseconds=1)


def local_periods(instants_us: Int64Array, period: Period, tz: str | dt.tzinfo) -> Int64Array:
    """The local calendar period (day or Monday-based week number) of each instant."""
    if period not in PERIODS:
        raise ValidationError("period", period, f"must be one of {sorted(PERIODS)}")
    zone = _zone(tz)
    instants = np.asarray(instants_us, dtype=np.int64)
    days = (instants + _offsets_us(instants, zone)) // MICROS_PER_DAY
    if period == "week":
        weeks: Int64Array = (days + _MONDAY_SHIFT) // 7
        return weeks
    result: Int64Array = days
    return result


@attrs.frozen(eq=False)
class RepeatSummary:
    """Per-customer repeat-purchase summary, one row per customer with a purchase.

    Attributes:
        numbers: CRM number text of each row, ascending.
        x: repeat purchase periods.
        t_x: periods from the first to the last purchase period.
        big_t: periods from the first purchase period to the end of observation (``T``).
        m: mean value of the repeat periods, in reporting-currency units (0 where ``x == 0``).
        end: the end of observation (``as_of`` or the calibration end).
        period: ``"day"`` or ``"week"``.
        tz: the time zone periods were cut in.
    """

    numbers: npt.NDArray[np.object_]
    x: FloatArray
    t_x: FloatArray
    big_t: FloatArray
    m: FloatArray
    end: dt.datetime
    period: Period
    tz: str

    def __len__(self) -> int:
        return len(self.numbers)

    def row(self, number: str) -> int:
        """The row of a customer's CRM number text.

        Raises:
            ValidationError: the customer has no purchase before the end of observation.
        """
        index = int(np.searchsorted(self.numbers, number))
        if index >= len(self.numbers) or self.numbers[index] != number:
            raise ValidationError("number", number, "has no purchase in the summary")
        return index


def summarise_purchases(
    customer: npt.NDArray[np.object_],
    occurred_us: Int64Array,
    value_minor: Int64Array,
    *,
    end: dt.datetime,
    period: Period,
    tz: str | dt.tzinfo,
    minor_per_unit: int,
) -> RepeatSummary:
    """The :class:`RepeatSummary` of purchases (already filtered to purchases before ``end``).

    Args:
        customer: CRM number text of each purchase.
        occurred_us: its instant (microseconds since the epoch, UTC).
        value_minor: its value in reporting-currency minor units.
        end: the end of observation; ``T`` counts up to its local period.
        minor_per_unit: minor units per currency unit (100 for EUR), for ``m``.
    """
    zone = _zone(tz)
    end_period = int(local_periods(np.array([to_us(end)], dtype=np.int64), period, zone)[0])
    periods = local_periods(occurred_us, period, zone)
    who, numbers = _factorize(customer)
    if len(who) == 0:
        empty = np.zeros(0)
        return RepeatSummary(numbers, empty, empty, empty, empty, end, period, _name(tz))
    # One sort of one int64 key (customer, then period) groups the purchases into occasions:
    # each run of equal keys is one customer's purchases in one period.
    base = int(periods.min())
    span = int(periods.max()) - base + 1
    key = who * span + (periods - base)
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    occasion_who = key[starts] // span
    occasion_period = key[starts] % span + base
    occasion_value = np.add.reduceat(value_minor[order].astype(np.float64), starts)
    # Occasions are ordered by customer, then period: each customer's first row is their
    # first period, the row before the next customer's is their last.
    first_rows = np.flatnonzero(np.concatenate(([True], occasion_who[1:] != occasion_who[:-1])))
    last_rows = np.concatenate((first_rows[1:], [len(occasion_who)])) - 1
    occasions = last_rows - first_rows + 1
    first = occasion_period[first_rows]
    last = occasion_period[last_rows]
    total_value = np.add.reduceat(occasion_value, first_rows)
    repeat_value = total_value - occasion_value[first_rows]
    x = (occasions - 1).astype(np.float64)
    m = np.where(x > 0, repeat_value / np.maximum(x, 1) / minor_per_unit, 0.0)
    return RepeatSummary(
        numbers=numbers,
        x=x,
        t_x=(last - first).astype(np.float64),
        big_t=(end_period - first).astype(np.float64),
        m=m,
        end=end,
        period=period,
        tz=_name(tz),
    )


def _name(tz: str | dt.tzinfo) -> str:
    return tz if isinstance(tz, str) else str(tz)


def _factorize(
    customer: npt.NDArray[np.object_],
) -> tuple[Int64Array, npt.NDArray[np.object_]]:
    """Codes ``0..n-1`` of each row's customer in ascending number order, and the numbers.

    A dictionary pass and a sort of the distinct numbers only: sorting every row's text
    (``np.unique`` on strings) is an order of magnitude slower on a large log.
    """
    lookup: dict[object, int] = {}
    codes = np.fromiter(
        (lookup.setdefault(c, len(lookup)) for c in customer.tolist()),
        dtype=np.int64,
        count=len(customer),
    )
    keys = np.array([str(k) for k in lookup], dtype=object)
    rank = np.argsort(keys.astype(str), kind="stable")
    position = np.empty(len(keys), dtype=np.int64)
    position[rank] = np.arange(len(keys), dtype=np.int64)
    numbers: npt.NDArray[np.object_] = keys[rank]
    return position[codes], numbers
