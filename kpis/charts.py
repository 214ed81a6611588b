"""Monthly trend charts drawn on the server as SVG geometry (no JavaScript chart library)."""

import math
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

WIDTH, HEIGHT = 320, 132
LEFT, RIGHT, TOP, BOTTOM = 44, 14, 12, 24


@dataclass
class Chart:
    path: str
    points: list[dict]
    y_ticks: list[dict]
    x_labels: list[dict]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right_x: int = WIDTH - RIGHT
    baseline: int = HEIGHT - BOTTOM
    empty: bool = False


def _nice_ceiling(value: float) -> float:
    """The next 'round' number at or above value: 1, 2, 2.5 or 5 times a power of ten."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _fmt(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def line_chart(series: list[tuple[date, Decimal | None]], *, unit: str) -> Chart:
    """Points of `series` (one per month, None where undefined) scaled into the SVG box; the y axis
    starts at zero (at 100 for percentages, it ends there)."""
    values = [float(v) for _d, v in series if v is not None]
    top_value = 100.0 if unit == "percent" else _nice_ceiling(max(values, default=0) * 1.05)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(series) - 1, 1)
    points, segments, pen_down = [], [], False
    for i, (month, value) in enumerate(series):
        x = LEFT + i * step
        if value is None:
            pen_down = False
            continue
        y = TOP + (1 - min(float(value), top_value) / top_value) * plot_h
        segments.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
        pen_down = True
        points.append({"x": round(x, 1), "y": round(y, 1), "month": month, "value": value})
    y_ticks = [{"y": round(TOP + (1 - f) * plot_h, 1), "label": _fmt(top_value * f)} for f in (0.0, 0.5, 1.0)]
    x_labels = [
        {"x": round(LEFT + i * step, 1), "label": month.strftime("%b") if month.month != 1 else month.strftime("%Y")}
        for i, (month, _v) in enumerate(series)
        if i % 3 == (len(series) - 1) % 3
    ]
    return Chart(path=" ".join(segments), points=points, y_ticks=y_ticks, x_labels=x_labels, empty=not points)
