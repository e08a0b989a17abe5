"""Rendering of one customer for ``crmcore customer show``."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from crmcore.domain import Money
from crmcore.services import Customer360

__all__ = ["render_customer"]


def _money(minor: int, currency: str) -> str:
    return str(Money.from_minor_units(minor, currency))


def render_customer(console: Console, view: Customer360, currency: str) -> None:
    """Print the profile, running totals and recent history of one customer."""
    c = view.customer
    agg = view.aggregate
    profile = Table.grid(padding=(0, 2))
    profile.add_column(style="bold")
    profile.add_column()
    rows: list[tuple[str, str | None]] = [
        ("CRM number", c.number.value),
        ("name", c.name.display),
        ("stage", c.stage.value),
        ("e-mail", ", ".join(str(e) for e in c.emails) or None),
        ("phone", ", ".join(str(p) for p in c.phones) or None),
        ("birth date", c.birth_date.isoformat() if c.birth_date else None),
        ("organisation", c.organisation),
        ("tags", ", ".join(sorted(c.tags)) or None),
        ("source", f"{c.source}/{c.external_id}" if c.external_id else c.source),
        ("owner", c.owner),
        ("created", c.created_at.isoformat()),
    ]
    for label, value in rows:
        if value:
            profile.add_row(label, value)
    console.print(profile)
    totals = Table(title="totals", show_header=False, title_justify="left")
    totals.add_column(style="bold")
    totals.add_column(justify="right")
    totals.add_row("purchases", str(agg.purchase_count))
    totals.add_row("refunds", str(agg.refund_count))
    totals.add_row("net value", _money(agg.net_minor, currency))
    if agg.first_purchase_at is not None:
        totals.add_row("first purchase", agg.first_purchase_at.date().isoformat())
    if agg.last_purchase_at is not None:
        totals.add_row("last purchase", agg.last_purchase_at.date().isoformat())
    totals.add_row("interactions", str(agg.interaction_count))
    totals.add_row("complaints", str(agg.complaint_count))
    console.print(totals)
    if view.recent_transactions:
        txs = Table(title="recent transactions", title_justify="left")
        for column in ("when", "kind", "total", "channel", "reference"):
            txs.add_column(column)
        for tx in view.recent_transactions:
            ref = f"{tx.source}/{tx.external_ref}" if tx.external_ref else ""
            txs.add_row(
                tx.occurred_at.isoformat(), tx.kind.value, str(tx.total), tx.channel.value, ref
            )
        console.print(txs)
    if view.recent_interactions:
        its = Table(title="recent interactions", title_justify="left")
        for column in ("when", "channel", "direction", "kind", "subject"):
            its.add_column(column)
        for i in view.recent_interactions:
            its.add_row(
                i.occurred_at.isoformat(),
                i.channel.value,
                i.direction.value,
                i.kind.value,
                i.subject or "",
            )
        console.print(its)
    if c.stage_history:
        console.print("[bold]stage history[/bold]")
        for change in c.stage_history:
            reason = f" ({change.reason})" if change.reason else ""
            console.print(
                f"  {change.at.date().isoformat()}: {change.from_stage.value} -> "
                f"{change.to_stage.value}{reason}"
            )
