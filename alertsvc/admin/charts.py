"""A server-rendered SVG line chart: the geometry, computed here; the markup is in the
template (``web/admin/_chart.html``). No script and no library: it scales with its box."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

WIDTH = 720
HEIGHT = 260
LEFT = 64
RIGHT = 32
TOP = 12
BOTTOM = 36


@dataclass(frozen=True)
class Series:
    name: str
    css_class: str
    points: str  # "x,y x,y …" for a <polyline>
    dots: list[tuple[float, float, int, date]]


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    right: float
    top: int
    bottom: float
    series: list[Series]
    y_ticks: list[Tick]
    x_ticks: list[Tick]


def _axis(value: int) -> tuple[int, int]:
    """The axis top (1, 2 or 5 times a power of ten, at least 4) and how many whole-number
    steps divide it: 0-4-8-12-16-20, 0-10-20-…-50, 0-2-4-…-10."""
    if value <= 4:
        return 4, 4
    magnitude = 1
    while magnitude * 10 < value:
        magnitude *= 10
    mantissa = next(m for m in (1, 2, 5, 10) if m * magnitude >= value)
    return mantissa * magnitude, 4 if mantissa == 2 else 5


def line_chart(days: Sequence[date], series: Sequence[tuple[str, str, Sequence[int]]]) -> Chart:
    """One line per ``(name, css_class, values)``, a value per day in ``days``."""
    right = WIDTH - RIGHT
    bottom = HEIGHT - BOTTOM
    top_value, steps = _axis(max((v for _, _, values in series for v in values), default=0))
    span = max(len(days) - 1, 1)

    def x(index: int) -> float:
        return round(LEFT + (right - LEFT) * index / span, 1)

    def y(value: int) -> float:
        return round(bottom - (bottom - TOP) * value / top_value, 1)

    lines = []
    for name, css_class, values in series:
        dots = [(x(i), y(v), v, days[i]) for i, v in enumerate(values)]
        lines.append(Series(name, css_class, " ".join(f"{a},{b}" for a, b, _, _ in dots), dots))
    y_ticks = [
        Tick(y(top_value * step // steps), f"{top_value * step // steps:,}")
        for step in range(steps + 1)
    ]
    x_ticks = [
        Tick(x(i), f"{day:%-d %b}") for i, day in enumerate(days) if i % 7 == (len(days) - 1) % 7
    ]
    return Chart(WIDTH, HEIGHT, LEFT, right, TOP, bottom, lines, y_ticks, x_ticks)
