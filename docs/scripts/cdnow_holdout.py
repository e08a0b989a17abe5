"""Draw docs/img/cdnow-holdout.svg: BG/NBD's holdout check on the CDNOW log.

Run from the repository root (needs the ``lifetimes`` package for its copy of the log)::

    python docs/scripts/cdnow_holdout.py

It loads the whole CDNOW log into an in-memory store, fits BG/NBD on the first 39 weeks
(to 1997-09-30) and plots, per number of repeat purchase days in that calibration period, the
mean repeat purchase days each group made in the following 39 weeks against the model's
conditional expectation. Plain SVG, no plotting library.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import lifetimes
import pandas as pd
import pyarrow as pa

from crmcore import Crm, InMemoryStore
from crmcore.services import Analytics

OUT = Path("docs/img/cdnow-holdout.svg")
END = dt.datetime(1998, 6, 30, tzinfo=dt.UTC)
CALIBRATION_END = dt.datetime(1997, 9, 30, tzinfo=dt.UTC)


def load() -> Analytics:
    path = Path(lifetimes.__file__).parent / "datasets" / "CDNOW_master.txt"
    frame = pd.read_csv(
        path, sep=r"\s+", header=0, names=["customer", "date", "cds", "amount"], dtype=str
    )
    crm = Crm(InMemoryStore(reporting_currency="USD"))
    ids = sorted(frame["customer"].unique())
    crm.import_customers(pa.table({"display_name": ids, "external_id": ids}), source="cdnow")
    crm.import_transactions(
        pa.table(
            {
                "customer_external_id": frame["customer"],
                "occurred_at": pd.to_datetime(frame["date"], format="%Y%m%d").dt.tz_localize("UTC"),
                "kind": ["purchase"] * len(frame),
                "amount": frame["amount"],
                "currency": ["USD"] * len(frame),
            }
        ),
        customer_source="cdnow",
    )
    return Analytics(crm)


def svg(rows: list[tuple[int, int, float, float]]) -> str:
    width, height, left, bottom, top, right = 640, 360, 60, 50, 30, 150
    top_value = max(max(a, p) for _, _, a, p in rows) * 1.1
    xs = [left + i * (width - left - right) / (len(rows) - 1) for i in range(len(rows))]

    def y(value: float) -> float:
        return height - bottom - value / top_value * (height - bottom - top)

    def line(values: list[float], colour: str, dash: str) -> str:
        points = " ".join(f"{x:.1f},{y(v):.1f}" for x, v in zip(xs, values, strict=True))
        dots = "".join(
            f'<circle cx="{x:.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>'
            for x, v in zip(xs, values, strict=True)
        )
        return (
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2" '
            f'stroke-dasharray="{dash}"/>{dots}'
        )

    ticks = "".join(
        f'<text x="{x:.1f}" y="{height - bottom + 18}" text-anchor="middle">'
        f"{b if b < len(rows) - 1 else f'{b}+'}</text>"
        for x, (b, _, _, _) in zip(xs, rows, strict=True)
    )
    grid = "".join(
        f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
        f'stroke="#ddd"/><text x="{left - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{v}</text>'
        for v in range(int(top_value) + 1)
    )
    legend_x = width - right + 15
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">'
        f'<rect width="{width}" height="{height}" fill="white"/>{grid}'
        f'<line x1="{left}" x2="{width - right}" y1="{height - bottom}" '
        f'y2="{height - bottom}" stroke="black"/>{ticks}'
        f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">'
        "repeat purchase days, weeks 1-39</text>"
        f'<text x="16" y="{(height - bottom + top) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {(height - bottom + top) / 2})">'
        "mean purchase days, weeks 40-78</text>"
        + line([a for _, _, a, _ in rows], "#1f3a93", "")
        + line([p for _, _, _, p in rows], "#c0392b", "6 4")
        + f'<line x1="{legend_x}" x2="{legend_x + 30}" y1="{top + 10}" y2="{top + 10}" '
        'stroke="#1f3a93" stroke-width="2"/>'
        f'<text x="{legend_x + 36}" y="{top + 14}">actual</text>'
        f'<line x1="{legend_x}" x2="{legend_x + 30}" y1="{top + 30}" y2="{top + 30}" '
        'stroke="#c0392b" stroke-width="2" stroke-dasharray="6 4"/>'
        f'<text x="{legend_x + 36}" y="{top + 34}">BG/NBD</text></svg>\n'
    )


def main() -> None:
    report = load().bgnbd_holdout(CALIBRATION_END, END, period="day")
    rows = [(r.repeat_purchases, r.customers, r.actual, r.predicted) for r in report]
    OUT.write_text(svg(rows), encoding="utf-8")
    print("| repeat days (calibration) | customers | actual | predicted |")
    print("|---|---|---|---|")
    for b, n, a, p in rows:
        print(f"| {b if b < len(rows) - 1 else f'{b}+'} | {n:,} | {a:.3f} | {p:.3f} |")


if __name__ == "__main__":
    main()
