"""Bar charts drawn on the server as SVG geometry (no script, any browser).

Each chart has a y scale with round tick values and a titled axis, x labels
thinned to what fits, an optional limit line, and a one-sentence summary for
screen readers; the page puts the same figures in a table beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 640
HEIGHT = 240
LEFT = 56  # room for the tick labels and the y axis title
RIGHT = 12
TOP = 12
BOTTOM = 44  # room for the x labels and the x axis title
MAX_X_LABELS = 8


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str
    series: int  # 0 first series, 1 second


@dataclass(frozen=True, slots=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True, slots=True)
class XLabel:
    x: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    bars: list[Bar]
    ticks: list[Tick]
    x_labels: list[XLabel]
    y_title: str
    x_title: str
    summary: str
    limit_y: float | None = None
    limit_label: str | None = None
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    plot_width: int = WIDTH - LEFT - RIGHT
    plot_height: int = HEIGHT - TOP - BOTTOM

    @property
    def bottom(self) -> int:
        return self.top + self.plot_height

    @property
    def right(self) -> int:
        return self.left + self.plot_width


def nice_scale(peak: float, ticks: int = 4) -> tuple[float, float]:
    """(ceiling, step): a step of 1, 2 or 5 x 10^n so that about ``ticks``
    steps cover ``peak``."""
    if peak <= 0:
        return 1.0 * ticks, 1.0
    raw = peak / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(step, 1.0)  # counts of messages or people: whole numbers
    return step * math.ceil(peak / step), step


def _tick_label(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"


def bar_chart(
    labels: Sequence[str],
    series: Sequence[Sequence[int]],
    *,
    y_title: str,
    x_title: str,
    summary: str,
    limit: float | None = None,
    limit_label: str | None = None,
) -> Chart:
    """Bars per label; with two series, side by side within each slot."""
    count = len(labels)
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    peak = max((v for values in series for v in values), default=0)
    show_limit = limit is not None and limit <= max(peak, 1) * 3
    ceiling, step = nice_scale(max(peak, limit if show_limit and limit else 0))
    slot = plot_width / max(count, 1)
    width = max((slot - 2) / max(len(series), 1), 1.0)
    bars: list[Bar] = []
    for index, label in enumerate(labels):
        for number, values in enumerate(series):
            value = values[index]
            height = plot_height * value / ceiling
            bars.append(
                Bar(
                    x=round(LEFT + index * slot + 1 + number * width, 1),
                    y=round(TOP + plot_height - height, 1),
                    width=round(width, 1),
                    height=round(height, 1),
                    value=value,
                    label=label,
                    series=number,
                )
            )
    ticks = [
        Tick(
            y=round(TOP + plot_height * (1 - (i * step) / ceiling), 1), label=_tick_label(i * step)
        )
        for i in range(round(ceiling / step) + 1)
    ]
    every = max(1, math.ceil(count / MAX_X_LABELS))
    x_labels = [
        XLabel(x=round(LEFT + i * slot + slot / 2, 1), label=labels[i])
        for i in range(0, count, every)
    ]
    limit_y = None
    if show_limit and limit is not None:
        limit_y = round(TOP + plot_height * (1 - limit / ceiling), 1)
    return Chart(
        bars=bars,
        ticks=ticks,
        x_labels=x_labels,
        y_title=y_title,
        x_title=x_title,
        summary=summary,
        limit_y=limit_y,
        limit_label=limit_label if limit_y is not None else None,
    )
