"""``SqlSegments``: segment definitions and their membership snapshots."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from crmcore.adapters.sqlalchemy._context import TransactionContext
from crmcore.adapters.sqlalchemy._errors import translated
from crmcore.domain import CrmNumber, Segment, SegmentMembership
from crmcore.domain._checks import aware_utc
from crmcore.errors import DuplicateError, NotFound, ValidationError

__all__ = ["SqlSegments", "segment_from_row", "segment_row"]


def segment_row(segment: Segment) -> dict[str, Any]:
    """The stored columns of ``segment`` but its name."""
    purpose, channel = segment.requires_consent or (None, None)
    return {
        "rule": segment.rule,
        "description": segment.description,
        "consent_purpose": purpose,
        "consent_channel": channel,
    }


def segment_from_row(
    name: str, rule: str, description: str, purpose: str | None, channel: str | None
) -> Segment:
    """The segment of a stored row."""
    required = None if purpose is None else (purpose, channel)
    return Segment(name=name, rule=rule, description=description, requires_consent=required)


class SqlSegments:
    """The segments and their membership runs of one unit of work (see
    :class:`~crmcore.ports.SegmentRepository`).

    Args:
        context: the unit's transaction context.
    """

    def __init__(self, context: TransactionContext) -> None:
        self._ctx = context
        self._t = context.tables

    def save(self, segment: Segment) -> None:
        conn = self._ctx.write()
        if not isinstance(segment, Segment):
            raise ValidationError("segment", segment, "must be a Segment")
        s = self._t.segments
        values = segment_row(segment)
        with translated("segment"):
            result = conn.execute(update(s).where(s.c.name == segment.name).values(**values))
            if result.rowcount == 0:
                exists = conn.execute(select(s.c.name).where(s.c.name == segment.name)).first()
                if exists is None:
                    conn.execute(insert(s).values(name=segment.name, **values))

    def _row(self, conn: Connection, name: str) -> Any:
        s = self._t.segments
        return conn.execute(select(s).where(s.c.name == name)).mappings().first()

    def get(self, name: str) -> Segment:
        conn = self._ctx.read()
        with translated("segment"):
            row = self._row(conn, name)
        if row is None:
            raise NotFound("segment", name)
        return segment_from_row(
            row["name"],
            row["rule"],
            row["description"],
            row["consent_purpose"],
            row["consent_channel"],
        )

    def list(self) -> Sequence[Segment]:
        conn = self._ctx.read()
        s = self._t.segments
        query = select(
            s.c.name, s.c.rule, s.c.description, s.c.consent_purpose, s.c.consent_channel
        ).order_by(s.c.name)
        # Read on every Analytics.refresh: compiled once (``_prepared``).
        prepared = self._ctx.inserts.prepared.get(conn, "segments", lambda: query)
        with translated("segment"):
            rows = (conn.execute(query) if prepared is None else prepared.execute(conn, {})).all()
        return [segment_from_row(*row) for row in rows]

    def delete(self, name: str) -> None:
        conn = self._ctx.write()
        t = self._t
        with translated("segment"):
            if self._row(conn, name) is None:
                raise NotFound("segment", name)
            conn.execute(delete(t.segment_members).where(t.segment_members.c.segment == name))
            conn.execute(delete(t.segment_runs).where(t.segment_runs.c.segment == name))
            conn.execute(delete(t.segments).where(t.segments.c.name == name))

    def save_membership(self, membership: SegmentMembership) -> None:
        conn = self._ctx.write()
        if not isinstance(membership, SegmentMembership):
            raise ValidationError("membership", membership, "must be a SegmentMembership")
        t = self._t
        r = t.segment_runs
        with translated("segment run"):
            if self._row(conn, membership.segment) is None:
                raise NotFound("segment", membership.segment)
            clash = conn.execute(
                select(r.c.segment).where(
                    r.c.segment == membership.segment, r.c.as_of == membership.as_of
                )
            ).first()
            if clash is not None:
                raise DuplicateError(
                    "segment run", f"{membership.segment} as of {membership.as_of.isoformat()}"
                )
            conn.execute(insert(r).values(segment=membership.segment, as_of=membership.as_of))
            members = [
                {"segment": membership.segment, "as_of": membership.as_of, "customer": n.value}
                for n in sorted(membership.members)
            ]
            if members:
                conn.execute(insert(t.segment_members), members)

    def latest_membership(
        self, name: str, *, before: dt.datetime | None = None
    ) -> SegmentMembership | None:
        conn = self._ctx.read()
        t = self._t
        r = t.segment_runs
        query = select(r.c.as_of).where(r.c.segment == name)
        if before is not None:
            query = query.where(r.c.as_of < aware_utc("before", before))
        with translated("segment run"):
            as_of = conn.execute(query.order_by(r.c.as_of.desc()).limit(1)).scalar()
            if as_of is None:
                return None
            m = t.segment_members
            members = conn.execute(
                select(m.c.customer).where(m.c.segment == name, m.c.as_of == as_of)
            ).scalars()
            return SegmentMembership(
                segment=name, as_of=as_of, members=frozenset(CrmNumber(n) for n in members)
            )

    def runs_including(self, number: CrmNumber) -> Sequence[tuple[str, dt.datetime]]:
        conn = self._ctx.read()
        m = self._t.segment_members
        query = select(m.c.segment, m.c.as_of).where(m.c.customer == number.value)
        with translated("segment run"):
            rows = conn.execute(query).all()
        # Ordered here, not by ORDER BY: each database collates names its own way.
        return sorted((segment, as_of) for segment, as_of in rows)
