"""What an import returns: counts, rejected rows with their reasons, and the time it took."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["ImportResult", "RejectedRow"]


@attrs.frozen
class RejectedRow:
    """One input row the import refused, and why.

    Attributes:
        row: the row's position in the input, from 0 (a CSV file's first data row is 0).
        field: the column that was refused (the first bad one, as the per-row API reports).
        value: the refused value as text (``None`` when it was missing).
        reason: what is wrong with it, in words.
    """

    row: int
    field: str
    value: str | None
    reason: str


@attrs.frozen
class ImportResult:
    """What :meth:`~crmcore.Crm.import_transactions` (and its siblings) did.

    Attributes:
        created: rows stored.
        duplicates: valid rows not stored because their import key (``(source,
            external_ref)``, or ``(source, external_id)`` for customers) was stored before
            or appeared earlier in the input.
        rejected: the invalid rows, in input order.
        elapsed: seconds the import took.
        batches: how many batches (units of work) were committed.
    """

    created: int
    duplicates: int
    rejected: tuple[RejectedRow, ...]
    elapsed: float
    batches: int

    @property
    def rows(self) -> int:
        """Rows read: created + duplicates + rejected."""
        return self.created + self.duplicates + len(self.rejected)

    def rejected_table(self) -> Any:
        """The rejected rows as a ``pyarrow.Table`` (columns row, field, value, reason)."""
        import pyarrow as pa

        return pa.table(
            {
                "row": pa.array([r.row for r in self.rejected], type=pa.int64()),
                "field": pa.array([r.field for r in self.rejected], type=pa.string()),
                "value": pa.array([r.value for r in self.rejected], type=pa.string()),
                "reason": pa.array([r.reason for r in self.rejected], type=pa.string()),
            }
        )
