"""The interface every measured implementation provides, and the shared result shapes."""

from __future__ import annotations

import abc
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.data import Event
from benchmarks.spec import RfmResult, SegmentMap


@dataclasses.dataclass(frozen=True)
class Context:
    """Where an implementation finds its data and databases."""

    data_dir: Path
    segments: SegmentMap
    sqlite_path: Path
    postgres_url: str | None
    customers: int
    mariadb_url: str | None = None


@dataclasses.dataclass(frozen=True)
class IngestCheck:
    """What was stored: counts and the net money total (purchases - refunds, minor units)."""

    customers: int
    transactions: int
    interactions: int
    net_minor: int

    def array(self) -> npt.NDArray[np.int64]:
        return np.array(dataclasses.astuple(self), dtype=np.int64)


Refreshed = tuple[int, int, int, int, int]
"""(R, F, M, segment index, rule bits) of one customer after one new transaction."""


class Implementation(abc.ABC):
    """One contender. ``ingest`` runs first (timed once), then the other workloads."""

    name: str

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @abc.abstractmethod
    def ingest(self) -> IngestCheck:
        """Load the generated store into this implementation's natural form."""

    @abc.abstractmethod
    def rfm(self) -> RfmResult | Any:
        """Workload 1: R, F, M scores and the named segment of every customer."""

    def attach(self) -> None:
        """Open the store an earlier run loaded and kept, instead of ``ingest`` (only
        implementations whose store outlives the process offer this)."""
        raise NotImplementedError(f"{self.name} cannot reuse a kept store")

    def prepare_scores(self) -> None:  # noqa: B027 - optional hook
        """Untimed: build the per-customer aggregates the ``scores`` workload starts from."""

    def scores(self) -> RfmResult | Any:
        """Workload 1b: the three scores alone from ready per-customer aggregates."""
        return None

    @abc.abstractmethod
    def rules(self) -> npt.NDArray[np.int16] | Any:
        """Workload 2: the ten rule memberships of every customer, packed as bits."""

    @abc.abstractmethod
    def prepare_incremental(self) -> None:
        """Untimed: remember the cut points of the last full run."""

    refresh_s: float | None = None
    """Set by ``refresh`` when only part of it is the measured work (crmcore: recording the
    transaction and refreshing the customer, not building the host's ``Transaction`` object
    nor the harness's cross-check); otherwise the whole call is timed."""

    @abc.abstractmethod
    def refresh(self, event: Event) -> Refreshed:
        """Workload 3: record one transaction, return the customer's refreshed result."""

    def convert(self, workload: str, native: Any) -> Any:
        """Untimed: turn a workload's native result into the compared shape (default: as is).

        Implementations whose natural answer is not indexed by customer id (crmcore's are in
        snapshot row order, keyed by CRM number) translate here, outside the timing."""
        return native

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def notes(self) -> dict[str, dict[str, Any]]:
        """Extra figures per workload to add to its record (e.g. memory per transaction)."""
        return {}


def scatter(n: int, ids: Any, values: Any, dtype: Any, fill: int) -> npt.NDArray[Any]:
    """A length-``n`` array indexed by customer id, ``fill`` where ``ids`` has no row."""
    out = np.full(n, fill, dtype=dtype)
    out[np.asarray(ids, dtype=np.int64)] = np.asarray(values)
    return out
