"""Chart data for the pages: plain JSON that ``static/console.js`` hands to uPlot."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from gasworks.llm.budgets.ledger import UsageRow


def _epoch(d: date) -> int:
    return int(datetime.combine(d, time(), UTC).timestamp())


def day_series(
    start: date,
    end: date,
    rows: Sequence[UsageRow],
    measures: Sequence[tuple[str, Callable[[UsageRow], float]]],
    *,
    second_scale: bool = False,
) -> dict[str, Any]:
    """One point per day from ``start`` to ``end`` (days without calls are 0).
    ``second_scale``: the second measure gets its own axis (calls beside dollars)."""
    by_day = {r.group.get("day"): r for r in rows}
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    return {
        "x": [_epoch(d) for d in days],
        "series": [
            {
                "label": label,
                "scale": "y2" if second_scale and i == 1 else "y",
                "values": [
                    fn(by_day[d.isoformat()]) if d.isoformat() in by_day else 0 for d in days
                ],
            }
            for i, (label, fn) in enumerate(measures)
        ],
    }


def time_series(
    when: Sequence[datetime], series: Sequence[tuple[str, Sequence[float]]]
) -> dict[str, Any]:
    return {
        "x": [w.timestamp() for w in when],
        "series": [{"label": label, "values": list(values)} for label, values in series],
    }


def bars(
    rows: Sequence[UsageRow],
    key: str,
    value: Callable[[UsageRow], float],
    label: Callable[[float], str],
) -> list[dict[str, Any]]:
    """Categorical totals (by model, key, workflow) as server-rendered bars, largest first."""
    out = [
        {"name": r.group.get(key) or "(none)", "value": value(r), "label": label(value(r))}
        for r in rows
    ]
    return sorted(out, key=lambda b: b["value"], reverse=True)
