"""The segmentation report: printed by ``crmcore demo``, written as HTML by ``crmcore report``.

The report holds counts and sums only (no names, e-mail addresses or CRM numbers), so it can
be shared without exposing personal data.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence

import attrs
from rich.console import Console
from rich.table import Table

from crmcore.domain import Money

__all__ = [
    "Movement",
    "ReportData",
    "SegmentRow",
    "ValueBand",
    "ValueSection",
    "render_html",
    "render_text",
]


@attrs.frozen
class SegmentRow:
    """One named segment: how many customers and what they are worth (minor units)."""

    name: str
    customers: int
    value_minor: int


@attrs.frozen
class Movement:
    """A saved segment run compared with the previous one."""

    segment: str
    rule: str
    size: int
    entered: int
    exited: int
    previous_as_of: dt.datetime | None


@attrs.frozen
class ValueBand:
    """Buyers whose probability of still being a customer lies in one band.

    Attributes:
        label: the band, e.g. ``"likely lost (P(alive) < 0.2)"``.
        customers: buyers in it.
        expected_purchases: their summed expected purchase days over the horizon.
        clv_minor: their summed CLV over the horizon, minor units.
    """

    label: str
    customers: int
    expected_purchases: float
    clv_minor: int


@attrs.frozen
class ValueSection:
    """The predictive part of a report (BG/NBD + Gamma-Gamma, :mod:`crmcore.services`).

    Attributes:
        horizon_days: what the expectations and CLV cover.
        buyers: customers with a purchase (the fitted ones).
        bands: buyers by P(alive), most likely alive first.
        top_decile_clv_share: share of the total CLV held by the 10% most valuable buyers.
        parameters: the fitted BG/NBD and Gamma-Gamma parameters.
        note: why the section is empty (too few buyers, SciPy missing), or ``""``.
    """

    horizon_days: int
    buyers: int = 0
    bands: Sequence[ValueBand] = ()
    top_decile_clv_share: float = 0.0
    parameters: Mapping[str, float] = attrs.field(factory=dict)
    note: str = ""


@attrs.frozen
class ReportData:
    """Everything a report shows.

    Attributes:
        as_of: the instant the scores and segments are computed for.
        currency: reporting currency of the values.
        customers: all customers; ``scored``: those with a purchase (RFM-scored).
        segments: the RFM segments (plus ``unscored``), largest first.
        grid: ``grid[r - 1][f - 1]`` = customers with recency score r and frequency score f.
        grid_value: the same cells' summed value in minor units.
        lifecycle: ``(stage, customers)`` in funnel order.
        movements: rule segments, each compared with its previous run.
        value: expected purchases, churn (P(alive)) and CLV, or ``None`` when not asked.
    """

    as_of: dt.datetime
    currency: str
    customers: int
    scored: int
    segments: Sequence[SegmentRow]
    grid: Sequence[Sequence[int]]
    grid_value: Sequence[Sequence[int]]
    lifecycle: Sequence[tuple[str, int]]
    movements: Sequence[Movement]
    k: int = 5
    ties: str = "shared"
    value: ValueSection | None = None


def _money(minor: int, currency: str) -> str:
    amount = Money.from_minor_units(minor, currency).amount
    return (
        f"{amount:,.2f} {currency}"
        if amount.as_tuple().exponent == -2
        else f"{amount:,} {currency}"
    )


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


# -- text ---------------------------------------------------------------------------------------


def render_text(console: Console, data: ReportData) -> None:
    """Print the report with rich tables."""
    console.print(
        f"[bold]{data.customers:,} customers[/bold], {data.scored:,} with purchases, "
        f"as of {data.as_of.isoformat()} (RFM k={data.k}, ties={data.ties}); "
        f"values in {data.currency}"
    )
    seg = Table(title="RFM segments", title_justify="left")
    seg.add_column("segment")
    seg.add_column("customers", justify="right")
    seg.add_column("share", justify="right")
    seg.add_column("value", justify="right")
    seg.add_column("value share", justify="right")
    total_value = sum(max(s.value_minor, 0) for s in data.segments)
    for row in data.segments:
        seg.add_row(
            row.name,
            f"{row.customers:,}",
            _share(row.customers, data.customers),
            _money(row.value_minor, data.currency),
            _share(max(row.value_minor, 0), total_value),
        )
    console.print(seg)

    grid = Table(title="RFM grid: customers by recency (rows) and frequency (columns)")
    grid.add_column("R \\ F", justify="right")
    k = len(data.grid)
    for f in range(1, k + 1):
        grid.add_column(str(f), justify="right")
    for r in range(k, 0, -1):
        grid.add_row(str(r), *(f"{n:,}" for n in data.grid[r - 1]))
    console.print(grid)

    life = Table(title="Lifecycle", title_justify="left")
    life.add_column("stage")
    life.add_column("customers", justify="right")
    life.add_column("share", justify="right")
    for stage, count in data.lifecycle:
        life.add_row(stage, f"{count:,}", _share(count, data.customers))
    console.print(life)

    if data.value is not None:
        _value_text(console, data.value, data.currency)

    if data.movements:
        moves = Table(title="Segment runs: changes since the previous run", title_justify="left")
        moves.add_column("segment")
        moves.add_column("members", justify="right")
        moves.add_column("entered", justify="right")
        moves.add_column("left", justify="right")
        moves.add_column("previous run")
        for m in data.movements:
            moves.add_row(
                m.segment,
                f"{m.size:,}",
                f"+{m.entered:,}",
                f"-{m.exited:,}",
                m.previous_as_of.date().isoformat() if m.previous_as_of else "(first run)",
            )
        console.print(moves)


def _value_title(value: ValueSection) -> str:
    return f"Value and churn: the next {value.horizon_days} days (BG/NBD + Gamma-Gamma)"


def _value_text(console: Console, value: ValueSection, currency: str) -> None:
    if value.note:
        console.print(f"[bold]{_value_title(value)}[/bold]: {value.note}")
        return
    table = Table(title=_value_title(value), title_justify="left")
    for name in ("buyers", "customers", "share", "expected purchases", "CLV"):
        table.add_column(name, justify="left" if name == "buyers" else "right")
    for band in value.bands:
        table.add_row(
            band.label,
            f"{band.customers:,}",
            _share(band.customers, value.buyers),
            f"{band.expected_purchases:,.0f}",
            _money(band.clv_minor, currency),
        )
    console.print(table)
    console.print(
        f"the 10% most valuable buyers hold {100 * value.top_decile_clv_share:.1f}% of the CLV; "
        + ", ".join(f"{k}={v:.3g}" for k, v in value.parameters.items())
    )


# -- HTML ---------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:60rem;color:#1f2937;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2.2rem}
.muted{color:#6b7280}table{border-collapse:collapse;margin:.5rem 0}
th,td{padding:.3rem .6rem;text-align:right;border-bottom:1px solid #e5e7eb}
th:first-child,td:first-child{text-align:left}
.heat td{width:3.2rem;height:2.2rem;text-align:center;border:1px solid #fff}
.funnel div.bar{background:#4f46e5;color:#fff;padding:.25rem .5rem;margin:.2rem auto;
white-space:nowrap;text-align:center;min-width:6rem;border-radius:3px}
svg text{font-size:12px;fill:#1f2937}
"""


def _bars_svg(rows: Sequence[SegmentRow], currency: str) -> str:
    width, label_w, bar_h, gap = 720, 150, 20, 6
    biggest = max((r.customers for r in rows), default=0) or 1
    height = len(rows) * (bar_h + gap) + gap
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="customers per segment">'
    ]
    for i, row in enumerate(rows):
        y = gap + i * (bar_h + gap)
        w = round((width - label_w - 220) * row.customers / biggest)
        parts.append(
            f'<text x="0" y="{y + 14}">{html.escape(row.name)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="#4f46e5"/>'
            f'<text x="{label_w + w + 6}" y="{y + 14}">{row.customers:,} · '
            f"{html.escape(_money(row.value_minor, currency))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _heat(grid: Sequence[Sequence[int]]) -> str:
    k = len(grid)
    top = max((n for row in grid for n in row), default=0) or 1
    out = ['<table class="heat"><tr><th>R \\ F</th>']
    out += [f"<th>{f}</th>" for f in range(1, k + 1)]
    out.append("</tr>")
    for r in range(k, 0, -1):
        out.append(f"<tr><th>{r}</th>")
        for n in grid[r - 1]:
            alpha = 0.08 + 0.92 * n / top
            ink = "#fff" if alpha > 0.55 else "#1f2937"
            out.append(
                f'<td style="background:rgba(79,70,229,{alpha:.2f});color:{ink}" '
                f'title="{n} customers">{n:,}</td>'
            )
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _funnel(lifecycle: Sequence[tuple[str, int]]) -> str:
    top = max((n for _, n in lifecycle), default=0) or 1
    out = ['<div class="funnel">']
    for stage, n in lifecycle:
        pct = max(100 * n / top, 1)
        out.append(f'<div class="bar" style="width:{pct:.1f}%">{html.escape(stage)}: {n:,}</div>')
    out.append("</div>")
    return "".join(out)


def _value_html(value: ValueSection | None, currency: str) -> str:
    if value is None:
        return ""
    esc = html.escape
    if value.note:
        return f'<h2>{esc(_value_title(value))}</h2><p class="muted">{esc(value.note)}</p>'
    rows = "".join(
        f"<tr><td>{esc(b.label)}</td><td>{b.customers:,}</td>"
        f"<td>{_share(b.customers, value.buyers)}</td><td>{b.expected_purchases:,.0f}</td>"
        f"<td>{esc(_money(b.clv_minor, currency))}</td></tr>"
        for b in value.bands
    )
    parameters = ", ".join(f"{esc(k)}={v:.3g}" for k, v in value.parameters.items())
    return (
        f"<h2>{esc(_value_title(value))}</h2>"
        '<p class="muted">Buyers by the probability that they are still customers (P(alive)), '
        "with the purchase days and the discounted value the models expect from them.</p>"
        "<table><tr><th>buyers</th><th>customers</th><th>share</th>"
        f"<th>expected purchases</th><th>CLV</th></tr>{rows}</table>"
        f'<p class="muted">The 10% most valuable buyers hold '
        f"{100 * value.top_decile_clv_share:.1f}% of the CLV. Fitted: {parameters}.</p>"
    )


def render_html(data: ReportData) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no external assets)."""
    esc = html.escape
    seg_rows = "".join(
        f"<tr><td>{esc(s.name)}</td><td>{s.customers:,}</td>"
        f"<td>{_share(s.customers, data.customers)}</td>"
        f"<td>{esc(_money(s.value_minor, data.currency))}</td></tr>"
        for s in data.segments
    )
    move_rows = "".join(
        f"<tr><td>{esc(m.segment)}</td><td>{m.size:,}</td><td>+{m.entered:,}</td>"
        f"<td>-{m.exited:,}</td><td>"
        f"{esc(m.previous_as_of.date().isoformat()) if m.previous_as_of else '(first run)'}"
        f"</td><td><code>{esc(m.rule)}</code></td></tr>"
        for m in data.movements
    )
    movements = (
        "<h2>Segment runs</h2><table><tr><th>segment</th><th>members</th><th>entered</th>"
        f"<th>left</th><th>previous run</th><th>rule</th></tr>{move_rows}</table>"
        if data.movements
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>crmcore report as of {esc(data.as_of.date().isoformat())}</title>
<style>{_CSS}</style></head>
<body>
<h1>Customer segmentation report</h1>
<p class="muted">As of {esc(data.as_of.isoformat())} · {data.customers:,} customers,
{data.scored:,} with purchases · RFM k={data.k}, ties={esc(data.ties)} ·
values in {esc(data.currency)}</p>
<h2>Segment sizes</h2>
{_bars_svg(data.segments, data.currency)}
<table><tr><th>segment</th><th>customers</th><th>share</th><th>value</th></tr>{seg_rows}</table>
<h2>RFM heat map</h2>
<p class="muted">Customers by recency score (rows, {data.k} = most recent) and frequency
score (columns, {data.k} = most frequent).</p>
{_heat(data.grid)}
<h2>Lifecycle funnel</h2>
{_funnel(data.lifecycle)}
{_value_html(data.value, data.currency)}
{movements}
<p class="muted">Generated by crmcore. Counts and sums only: no personal data.</p>
</body></html>
"""
