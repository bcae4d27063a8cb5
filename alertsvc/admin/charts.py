"""A server-rendered SVG line chart: the geometry, computed here; the markup is in the
template (``web/admin/_chart.html``). No script and no library: it scales with its box."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

WIDTH = 720
HEIGHT = 260
LEFT = 56
RIGHT = 12
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


def _nice_ceiling(value: int) -> int:
    """The axis top: the value rounded up to 1, 2 or 5 times a power of ten."""
    if value <= 4:
        return 4
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def line_chart(days: Sequence[date], series: Sequence[tuple[str, str, Sequence[int]]]) -> Chart:
    """One line per ``(name, css_class, values)``, a value per day in ``days``."""
    right = WIDTH - RIGHT
    bottom = HEIGHT - BOTTOM
    top_value = _nice_ceiling(max((v for _, _, values in series for v in values), default=0))
    span = max(len(days) - 1, 1)

    def x(index: int) -> float:
        return round(LEFT + (right - LEFT) * index / span, 1)

    def y(value: int) -> float:
        return round(bottom - (bottom - TOP) * value / top_value, 1)

    lines = []
    for name, css_class, values in series:
        dots = [(x(i), y(v), v, days[i]) for i, v in enumerate(values)]
        lines.append(Series(name, css_class, " ".join(f"{a},{b}" for a, b, _, _ in dots), dots))
    y_ticks = [Tick(y(top_value * step // 4), f"{top_value * step // 4:,}") for step in range(5)]
    x_ticks = [
        Tick(x(i), f"{day:%-d %b}") for i, day in enumerate(days) if i % 7 == (len(days) - 1) % 7
    ]
    return Chart(WIDTH, HEIGHT, LEFT, right, TOP, bottom, lines, y_ticks, x_ticks)
