"""The report's charts: Vega-Lite specs rendered to static SVG by vl-convert (bench/charts.py says why this library).

vl-convert runs Vega in an embedded JavaScript engine and returns the SVG as text: no browser, no scripts in the
output. Data is always inline and `allowed_base_urls=[]` refuses any URL a spec might name, so rendering never
touches the network. Text (class labels, error codes) comes from records, so `safe_svg` checks what came back
before it goes into the page: the SVG renderer escapes text, and a chart that somehow carried markup is dropped.
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree import ElementTree

FONT = "-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
INK, MUTED, GRID, ACCENT = "#1f2933", "#52606d", "#e4e7eb", "#2f6fdb"
MAX_CLASSES = 20  # heatmap rows/columns; the rest of the labels are summed into OTHER_CLASS
OTHER_CLASS = "(other)"
MAX_BARS = 15
LABEL_LIMIT = 220  # pixels of an axis label before Vega ellipsizes it

_CONFIG: dict[str, Any] = {
    "font": FONT,
    "background": "#ffffff",
    "view": {"stroke": None},
    "axis": {
        "labelColor": MUTED,
        "titleColor": INK,
        "labelFontSize": 11,
        "titleFontSize": 12,
        "titleFontWeight": 600,
        "gridColor": GRID,
        "domainColor": "#9aa5b1",
        "tickColor": "#9aa5b1",
        "labelLimit": LABEL_LIMIT,
    },
    "legend": {"labelColor": MUTED, "titleColor": INK, "titleFontWeight": 600},
    "bar": {"color": ACCENT},
}
# Elements and attributes that would run or load something; checked on the parsed SVG, not on its text, where an
# escaped label such as `&lt;img src=x&gt;` is harmless.
_UNSAFE_TAGS = {"script", "foreignobject", "iframe", "object", "embed", "image", "use", "a", "animate", "set"}
_CSS_LOADS = re.compile(r"@import|@font-face|url\(\s*['\"]?(?!#)", re.IGNORECASE)


_COUNT_AXIS = {"tickMinStep": 1, "format": "d"}  # record counts: whole numbers only


class ChartError(RuntimeError):
    """A chart could not be rendered safely; the report shows its table without it."""


def render(spec: dict[str, Any]) -> str:
    import vl_convert  # imported on first use: only the report steps pay for it

    svg: str = vl_convert.vegalite_to_svg(
        {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", **spec}, config=_CONFIG, allowed_base_urls=[]
    )
    return safe_svg(svg)


def safe_svg(svg: str) -> str:
    """The SVG as inline markup: no XML declaration, and nothing that could run or load (else ChartError)."""
    svg = re.sub(r"^\s*<\?xml[^>]*\?>\s*", "", svg)
    try:
        root = ElementTree.fromstring(svg)
    except ElementTree.ParseError as error:
        raise ChartError(f"the rendered chart is not well-formed SVG: {error}") from None
    if _local(root.tag) != "svg":
        raise ChartError("the rendered chart is not an <svg> element")
    for element in root.iter():
        tag = _local(element.tag).lower()
        if tag in _UNSAFE_TAGS:
            raise ChartError(f"the rendered chart holds a <{tag}> element")
        if tag == "style" and _CSS_LOADS.search(element.text or ""):
            raise ChartError("the rendered chart's style loads something")
        for name, value in element.attrib.items():
            name = _local(name).lower()
            if (
                name.startswith("on")
                or (name in ("href", "src") and not value.startswith("#"))
                or (name == "style" and _CSS_LOADS.search(value))
            ):
                raise ChartError(f"the rendered chart holds a {name}= attribute on <{tag}>")
    return svg


def _local(name: str) -> str:
    """An ElementTree name without its {namespace}."""
    return name.rsplit("}", 1)[-1]


def histogram(counts: list[int], low: float, high: float, title: str) -> str:
    width = (high - low) / len(counts)
    values = [
        {"start": round(low + i * width, 6), "end": round(low + (i + 1) * width, 6), "records": n}
        for i, n in enumerate(counts)
    ]
    return render(
        {
            "width": 560,
            "height": 200,
            "data": {"values": values},
            "mark": {"type": "bar", "binSpacing": 1},
            "encoding": {
                "x": {
                    "field": "start",
                    "type": "quantitative",
                    "bin": {"binned": True, "step": width},
                    "title": title,
                    "scale": {"domain": [low, high]},
                    "axis": {"format": ".2f"},
                },
                "x2": {"field": "end"},
                "y": {"field": "records", "type": "quantitative", "title": "records", "axis": _COUNT_AXIS},
                "tooltip": [{"field": "start", "title": "from"}, {"field": "end", "title": "to"}, {"field": "records"}],
            },
        }
    )


def fold_classes(
    labels: list[str], matrix: list[list[int]], limit: int = MAX_CLASSES
) -> tuple[list[str], list[list[int]]]:
    """The `limit` - 1 classes with the most records (true or predicted) kept; the rest summed into OTHER_CLASS."""
    if len(labels) <= limit:
        return labels, matrix
    weight = [sum(matrix[i]) + sum(row[i] for row in matrix) for i in range(len(labels))]
    kept = sorted(sorted(range(len(labels)), key=lambda i: -weight[i])[: limit - 1])
    slot = {index: position for position, index in enumerate(kept)}
    other = len(kept)
    folded = [[0] * (other + 1) for _ in range(other + 1)]
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            folded[slot.get(i, other)][slot.get(j, other)] += count
    return [labels[i] for i in kept] + [OTHER_CLASS], folded


def heatmap(labels: list[str], matrix: list[list[int]]) -> str:
    cells = [
        {"reference": true, "predicted": predicted, "records": matrix[i][j]}
        for i, true in enumerate(labels)
        for j, predicted in enumerate(labels)
    ]
    size = max(160, min(520, 44 * len(labels)))
    peak = max((max(row) for row in matrix if row), default=0)
    axis_order = {"sort": labels}
    return render(
        {
            "width": size,
            "height": size,
            "data": {"values": cells},
            "encoding": {
                "x": {
                    "field": "predicted",
                    "type": "nominal",
                    "title": "predicted label",
                    **axis_order,
                    "axis": {"labelAngle": -35, "orient": "top"},
                },
                "y": {"field": "reference", "type": "nominal", "title": "reference label", **axis_order},
            },
            "layer": [
                {
                    "mark": {"type": "rect", "stroke": "#ffffff", "strokeWidth": 1},
                    "encoding": {
                        "color": {
                            "condition": {"test": "datum.records == 0", "value": "#f5f7fa"},
                            "field": "records",
                            "type": "quantitative",
                            "title": "records",
                            "scale": {"scheme": "blues", "domainMin": 0},
                        },
                        "tooltip": [{"field": "reference"}, {"field": "predicted"}, {"field": "records"}],
                    },
                },
                {
                    "mark": {"type": "text", "fontSize": 12, "fontWeight": 600},
                    "encoding": {
                        "text": {"field": "records", "type": "quantitative"},
                        "color": {
                            "condition": {"test": f"datum.records > {peak / 2}", "value": "#ffffff"},
                            "value": INK,
                        },
                    },
                },
            ],
        }
    )


def bars(rows: list[tuple[str, int]], title: str, color: str = ACCENT) -> str:
    """Horizontal bars, largest first (at most MAX_BARS; the caller's table lists every row)."""
    values = [{"label": label, "records": count} for label, count in rows[:MAX_BARS]]
    return render(
        {
            "width": 420,
            "height": {"step": 24},
            "data": {"values": values},
            "layer": [
                {"mark": {"type": "bar", "color": color}},
                {
                    "mark": {"type": "text", "align": "left", "dx": 4, "color": INK},
                    "encoding": {"text": {"field": "records", "type": "quantitative"}},
                },
            ],
            "encoding": {
                "y": {"field": "label", "type": "nominal", "title": None, "sort": "-x"},
                "x": {"field": "records", "type": "quantitative", "title": title, "axis": _COUNT_AXIS},
            },
        }
    )
