"""What every analytics read shares: the frame as of an instant, CRM numbers read back.

Used by the snapshot fetch (``_metrics``) and the window-function scorer (``_scoring``),
neither of which imports the other's module for it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
from sqlalchemy import Connection

from crmcore.adapters.sqlalchemy._frame import (
    INTERACTION_RAW,
    TRANSACTION_RAW,
    Frame,
    build_frame,
    latest_events,
)
from crmcore.adapters.sqlalchemy._tables import CrmTables
from crmcore.analytics._metrics import ObjectArray
from crmcore.domain import CrmNumber

__all__ = ["crm_numbers", "current_frame"]


def current_frame(
    conn: Connection, tables: CrmTables, dialect: str, as_of_us: int, needed: Collection[str]
) -> Frame:
    """The frame with the raw columns ``needed`` as of ``as_of_us`` (checks whether the
    maintained aggregates are current for that instant)."""
    wanted = set(needed)
    current_tx = current_ix = True
    if wanted & (TRANSACTION_RAW | INTERACTION_RAW):
        latest_tx, latest_ix = latest_events(conn, tables)
        current_tx = latest_tx is None or as_of_us >= latest_tx
        current_ix = latest_ix is None or as_of_us >= latest_ix
    return build_frame(
        tables, dialect, as_of_us, wanted, current_tx=current_tx, current_ix=current_ix
    )


def crm_numbers(values: Sequence[str]) -> ObjectArray:
    """CRM numbers read back from the database, as an object array of :class:`CrmNumber`.

    The values were validated when they were written, so only the canonical-shape check of
    the constructor runs (once per number, when a result needs the numbers).
    """
    out = np.empty(len(values), dtype=object)
    out[:] = [CrmNumber(v) for v in values]
    return out
