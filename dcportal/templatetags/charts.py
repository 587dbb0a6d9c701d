"""{% chart chart %}: a dcportal.charts.Chart as inline SVG with the same figures in a table.

The SVG is one image to assistive technology (role="img", named by its <title>, described by
its <desc>); its bars are links for the pointer only (tabindex -1), because the table beside it
carries every figure with the same link for the keyboard and screen readers.
"""

from django import template
from django.utils.html import format_html, format_html_join

register = template.Library()


def _join(parts):
    """Already escaped fragments, one after the other."""
    return format_html_join("", "{}", ((part,) for part in parts))


def _linked(mark, shape):
    """`shape` inside a link to the mark's list, or alone when there is no list."""
    if not mark.url:
        return shape
    # Not an <a>: an image role hides its contents from assistive technology, so links inside
    # it would be unreachable there; the table beside each chart carries the same links, and
    # portal.js follows data-href on a click for the mouse.
    return format_html(
        '<g data-href="{}" class="chart-link"><title>{}: {}</title>{}</g>',
        mark.url,
        mark.label,
        mark.value_text,
        shape,
    )


def _bars(chart):
    parts = []
    for mark in chart.marks:
        parts.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="end" dominant-baseline="middle" fill="#1b1f24">'
                "{}</text>",
                mark.label_x,
                mark.label_y,
                mark.label,
            )
        )
        bar = format_html(
            '<rect x="{}" y="{}" width="{}" height="{}" rx="2" fill="{}"></rect>',
            mark.x,
            mark.y,
            mark.width,
            mark.height,
            mark.fill,
        )
        parts.append(_linked(mark, bar))
        parts.append(
            format_html(
                '<text x="{}" y="{}" dominant-baseline="middle" fill="#1b1f24">{}</text>',
                mark.text_x,
                mark.text_y,
                mark.value_text,
            )
        )
    return _join(parts)


def _stack(chart):
    track = chart.track
    parts = [
        format_html(
            '<rect x="0" y="0" width="{}" height="{}" rx="2" fill="{}"></rect>',
            track.width,
            track.height,
            track.fill,
        )
    ]
    for mark in chart.marks:
        if mark.width:
            segment = format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"></rect>',
                mark.x,
                mark.y,
                mark.width,
                mark.height,
                mark.fill,
            )
            parts.append(_linked(mark, segment))
        parts.append(
            format_html(
                '<rect x="{}" y="{}" width="10" height="10" fill="{}"></rect>'
                '<text x="{}" y="{}" fill="#1b1f24">{} {}</text>',
                mark.label_x,
                mark.label_y,
                mark.fill,
                mark.text_x,
                mark.text_y,
                mark.label,
                mark.value_text,
            )
        )
    return _join(parts)


def _meter(chart):
    track, (fill,) = chart.track, chart.marks
    return format_html(
        '<rect x="0" y="0" width="{}" height="{}" rx="3" fill="{}"></rect>'
        '<rect x="0" y="0" width="{}" height="{}" rx="3" fill="{}"></rect>',
        track.width,
        track.height,
        track.fill,
        fill.width,
        fill.height,
        fill.fill,
    )


DRAW = {"bars": _bars, "stack": _stack, "meter": _meter}


def svg(chart):
    return format_html(
        '<svg role="img" aria-labelledby="{key}-title {key}-desc" width="100%" '
        'viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg" class="chart-svg" '
        'font-family="system-ui, sans-serif" font-size="12">'
        '<title id="{key}-title">{title}</title><desc id="{key}-desc">{desc}</desc>{body}</svg>',
        key=chart.key,
        w=chart.width,
        h=chart.height,
        title=chart.title,
        desc=chart.description,
        body=DRAW[chart.kind](chart),
    )


def _figure(datum):
    value = datum.value if isinstance(datum.value, int) else f"{datum.value:g}"
    if datum.url:
        return format_html('<a href="{}">{}</a>', datum.url, value)
    return format_html("{}", value)


def table(chart):
    rows = format_html_join(
        "",
        '<tr><th scope="row">{}</th><td>{}</td></tr>',
        ((datum.label, _figure(datum)) for datum in chart.data),
    )
    return format_html(
        '<table class="chart-data" data-chart="{}"><caption class="visually-hidden">{}</caption>'
        '<thead class="visually-hidden"><tr><th scope="col">{}</th><th scope="col">{}</th></tr>'
        "</thead><tbody>{}</tbody></table>",
        chart.key,
        chart.title,
        "Category",
        chart.value_header,
        rows,
    )


@register.simple_tag
def chart(chart):
    """The chart's SVG followed by its figures (each linking to the rows it counts)."""
    if chart.kind == "meter":
        fill = chart.marks[0]
        summary = (
            format_html('<a href="{}">{}</a>', fill.url, chart.summary)
            if fill.url
            else chart.summary
        )
        return format_html(
            '<span class="chart-meter">{} <span class="usage-text">{}</span></span>',
            svg(chart),
            summary,
        )
    return format_html("{}{}", svg(chart), table(chart))
