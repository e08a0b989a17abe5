"""Clocks: the system clock for production, a manual one for tests."""

from __future__ import annotations

import datetime as dt
import threading

from crmcore.domain._checks import aware_utc

__all__ = ["FixedClock", "SystemClock"]


class SystemClock:
    """The real time, in UTC."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class FixedClock:
    """A clock that says what it is told: ``FixedClock(t)``, then ``advance(days=1)``."""

    def __init__(self, at: dt.datetime) -> None:
        self._at = aware_utc("at", at)
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return self._at

    def set(self, at: dt.datetime) -> None:
        """Jump to ``at``."""
        with self._lock:
            self._at = aware_utc("at", at)

    def advance(self, delta: dt.timedelta | None = None, **kwargs: float) -> dt.datetime:
        """Move forward by ``delta`` or ``timedelta(**kwargs)``; return the new time."""
        step = delta if delta is not None else dt.timedelta(**kwargs)
        with self._lock:
            self._at += step
            return self._at

    def __repr__(self) -> str:
        return f"FixedClock({self._at.isoformat()!r})"
