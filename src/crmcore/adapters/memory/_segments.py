"""The in-memory segment repository: saved segments and their membership runs."""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence

from crmcore.adapters.memory._context import TransactionContext
from crmcore.domain import CrmNumber, Segment, SegmentMembership
from crmcore.domain._checks import aware_utc
from crmcore.errors import DuplicateError, NotFound, ValidationError

__all__ = ["Segments"]


class Segments:
    """:class:`~crmcore.ports.SegmentRepository` of one in-memory unit of work.

    Args:
        context: the unit's transaction context.
    """

    def __init__(self, context: TransactionContext) -> None:
        self._context = context
        self._state = context.state

    def save(self, segment: Segment) -> None:
        self._context.check_active()
        if not isinstance(segment, Segment):
            raise ValidationError("segment", segment, "must be a Segment")
        segments = self._state.segments
        previous = segments.get(segment.name)
        segments[segment.name] = segment

        def undo() -> None:
            if previous is None:
                del segments[segment.name]
            else:
                segments[segment.name] = previous

        self._context.undo.append(undo)

    def get(self, name: str) -> Segment:
        self._context.check_active()
        try:
            return self._state.segments[name]
        except KeyError:
            raise NotFound("segment", name) from None

    def list(self) -> Sequence[Segment]:
        self._context.check_active()
        return [self._state.segments[name] for name in sorted(self._state.segments)]

    def delete(self, name: str) -> None:
        segment = self.get(name)
        state = self._state
        del state.segments[name]
        runs = state.memberships.pop(name, None)

        def undo() -> None:
            state.segments[name] = segment
            if runs is not None:
                state.memberships[name] = runs

        self._context.undo.append(undo)

    def save_membership(self, membership: SegmentMembership) -> None:
        self._context.check_active()
        if not isinstance(membership, SegmentMembership):
            raise ValidationError("membership", membership, "must be a SegmentMembership")
        self.get(membership.segment)
        runs = self._state.memberships.setdefault(membership.segment, [])
        keys = [run.as_of for run in runs]
        position = bisect.bisect_left(keys, membership.as_of)
        if position < len(runs) and runs[position].as_of == membership.as_of:
            raise DuplicateError(
                "segment run", f"{membership.segment} as of {membership.as_of.isoformat()}"
            )
        runs.insert(position, membership)

        def undo() -> None:
            del runs[position]

        self._context.undo.append(undo)

    def latest_membership(
        self, name: str, *, before: dt.datetime | None = None
    ) -> SegmentMembership | None:
        self._context.check_active()
        runs = self._state.memberships.get(name, [])
        if before is None:
            return runs[-1] if runs else None
        cutoff = aware_utc("before", before)
        position = bisect.bisect_left([run.as_of for run in runs], cutoff)
        return runs[position - 1] if position > 0 else None

    def runs_including(self, number: CrmNumber) -> Sequence[tuple[str, dt.datetime]]:
        self._context.check_active()
        memberships = self._state.memberships
        return [
            (name, run.as_of)
            for name in sorted(memberships)
            for run in memberships[name]
            if number in run.members
        ]
