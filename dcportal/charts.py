"""Charts of the portal drawn on the server: figures in, SVG geometry out.

Pure functions without the ORM or templates, so the layout is testable on its own; the
`charts` template tag library turns a Chart into inline SVG plus a table of the same values
(the SVG is an image to assistive technology, the table carries the figures and the links).

Three shapes cover the dashboard:

- bar_chart: one horizontal bar per category, scaled to the largest (counts by status);
- stacked_bar: the parts of one whole side by side in one bar (power states, kinds);
- meter: used out of a total (memory, storage of a pool).
"""

from dataclasses import dataclass, field

# Fills chosen for at least 3:1 contrast against the white card (WCAG non-text contrast).
TONES = {
    "ok": "#1a7f37",
    "busy": "#0969da",
    "warn": "#9a6700",
    "bad": "#cf222e",
    "idle": "#6e7781",
    "other": "#8250df",
    "neutral": "#1f4e79",
}
TEXT = "#1b1f24"
TRACK = "#d0d7de"
FONT_SIZE = 12
ROW = 22
GAP = 6
LABEL_WIDTH = 120
VALUE_WIDTH = 56
MIN_MARK = 2  # a non-zero value stays visible however small its share
UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


@dataclass(frozen=True)
class Datum:
    """One figure: what it counts, how many, and the list that shows those rows."""

    label: str
    value: int | float
    url: str = ""
    tone: str = "neutral"


@dataclass(frozen=True)
class Mark:
    """A bar, a segment or a meter's fill, placed in the SVG's coordinate space."""

    label: str
    value: int | float
    url: str
    fill: str
    x: float
    y: float
    width: float
    height: float
    value_text: str
    text_x: float = 0.0  # where the value is written (bars) or the legend entry starts
    text_y: float = 0.0
    label_x: float = 0.0
    label_y: float = 0.0


@dataclass(frozen=True)
class Chart:
    kind: str  # "bars", "stack" or "meter"
    key: str  # unique on the page: ids of the SVG's <title> and <desc>
    title: str
    description: str
    width: int
    height: int
    marks: tuple = ()
    track: Mark | None = None
    total: int | float = 0
    summary: str = ""
    value_header: str = "Count"
    data: tuple = field(default_factory=tuple)  # the Datum rows, for the table beside the SVG


def _number(value):
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.1f}"
    return str(int(value))


def human_bytes(value):
    """1536 -> '1.5 KiB'; binary units, as hypervisors report memory and storage."""
    value = float(max(value or 0, 0))
    for unit in UNITS:
        if value < 1024 or unit == UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} {UNITS[-1]}"  # pragma: no cover - the loop always returns


def _describe(title, data, total):
    parts = ", ".join(f"{datum.label}: {_number(datum.value)}" for datum in data)
    return f"{title}. {parts}." if data else f"{title}: nothing to show."


def bar_chart(key, title, data, *, width=360, description=""):
    """One horizontal bar per datum, the longest being the largest value."""
    data = tuple(data)
    # Room for the longest label (about 7 px a character at 12 px), at most half the width.
    label_width = min(
        max([LABEL_WIDTH, *(len(datum.label) * 7 + 12 for datum in data)]), width // 2
    )
    area = width - label_width - VALUE_WIDTH
    largest = max((datum.value for datum in data), default=0)
    marks = []
    for index, datum in enumerate(data):
        y = index * (ROW + GAP)
        length = area * datum.value / largest if largest else 0
        if datum.value and length < MIN_MARK:
            length = MIN_MARK
        marks.append(
            Mark(
                label=datum.label,
                value=datum.value,
                url=datum.url,
                fill=TONES.get(datum.tone, TONES["neutral"]),
                x=label_width,
                y=y,
                width=round(length, 2),
                height=ROW,
                value_text=_number(datum.value),
                text_x=round(label_width + length + 6, 2),
                text_y=y + ROW / 2,
                label_x=label_width - 8,
                label_y=y + ROW / 2,
            )
        )
    height = max(len(data) * (ROW + GAP) - GAP, ROW)
    total = sum(datum.value for datum in data)
    return Chart(
        kind="bars",
        key=key,
        title=title,
        description=description or _describe(title, data, total),
        width=width,
        height=height,
        marks=tuple(marks),
        total=total,
        data=data,
    )


def stacked_bar(key, title, data, *, width=360, description=""):
    """The parts of one whole as segments of a single bar, with a legend underneath.

    Segments keep the order of `data`; an empty whole draws only the grey track."""
    data = tuple(data)
    total = sum(datum.value for datum in data)
    shown = [datum for datum in data if datum.value]
    # Tiny parts are widened to MIN_MARK; the others share what is left in proportion.
    tiny = [datum for datum in shown if width * datum.value / total < MIN_MARK]
    floor = MIN_MARK * len(tiny)
    big = sum(datum.value for datum in shown if datum not in tiny) or 1
    marks, x = [], 0.0
    legend_y = ROW + GAP + FONT_SIZE
    legend_x = 0.0
    column = width / max(min(len(data), 3), 1)
    for index, datum in enumerate(data):
        if total and datum.value:
            share = width * datum.value / total
            length = MIN_MARK if share < MIN_MARK else (width - floor) * datum.value / big
        else:
            length = 0
        legend_x = (index % 3) * column
        row = index // 3
        marks.append(
            Mark(
                label=datum.label,
                value=datum.value,
                url=datum.url,
                fill=TONES.get(datum.tone, TONES["neutral"]),
                x=round(x, 2),
                y=0,
                width=round(length, 2),
                height=ROW,
                value_text=_number(datum.value),
                text_x=round(legend_x + 16, 2),
                text_y=legend_y + row * (FONT_SIZE + GAP),
                label_x=round(legend_x, 2),
                label_y=legend_y + row * (FONT_SIZE + GAP) - FONT_SIZE / 2 - 1,
            )
        )
        x += length
    rows = max((len(data) + 2) // 3, 1)
    height = int(legend_y + (rows - 1) * (FONT_SIZE + GAP) + 4)
    track = Mark("", total, "", TRACK, 0, 0, width, ROW, _number(total))
    return Chart(
        kind="stack",
        key=key,
        title=title,
        description=description or _describe(title, data, total),
        width=width,
        height=height,
        marks=tuple(marks),
        track=track,
        total=total,
        data=data,
    )


def meter(key, title, used, total, *, width=160, url="", formatter=human_bytes):
    """`used` out of `total` as a filled track; the summary reads the same in words."""
    used = max(used or 0, 0)
    total = max(total or 0, 0)
    share = min(used / total, 1) if total else 0
    percent = round(share * 100)
    tone = "bad" if share >= 0.9 else "warn" if share >= 0.75 else "ok"
    summary = (
        f"{formatter(used)} of {formatter(total)} ({percent} %)" if total else "nothing reported"
    )
    length = width * share
    if used and total and length < MIN_MARK:
        length = MIN_MARK
    fill = Mark(title, used, url, TONES[tone], 0, 0, round(length, 2), 12, f"{percent} %")
    track = Mark("", total, "", TRACK, 0, 0, width, 12, formatter(total))
    return Chart(
        kind="meter",
        key=key,
        title=title,
        description=f"{title}: {summary}.",
        width=width,
        height=12,
        marks=(fill,),
        track=track,
        total=total,
        summary=summary,
        data=(Datum(title, used, url, tone),),
    )
