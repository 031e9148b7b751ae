"""report.html: one self-contained page per run, or per rejected file, for a person to look at.

Everything is inline (CSS in a <style>, charts as <svg>): no script, no stylesheet, font or image is loaded, so the
page opens the same from the S3 console, a laptop offline, or an e-mail attachment. Every string that came from a
record, a model or a file (ids, predictions, references, labels, error messages, file names) is HTML-escaped by
`_e`; the charts' own text is escaped by their renderer and checked (charts.safe_svg).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from batch_pipeline import settings
from batch_pipeline.results.report import charts

JOBS_SHOWN = 50
REJECTED_LINES_SHOWN = 50

_CSS = """
:root { --ink:#1f2933; --muted:#52606d; --line:#e4e7eb; --soft:#f5f7fa; --accent:#2f6fdb;
        --ok:#1e7d4f; --ok-bg:#e3f5ec; --warn:#9c5b00; --warn-bg:#fff4e0; --bad:#b42318; --bad-bg:#fdecea; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--soft); color: var(--ink);
       font: 14px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 28px 24px 48px; }
header { margin-bottom: 20px; }
h1 { font-size: 22px; margin: 0 0 6px; font-weight: 650; letter-spacing: -0.01em; word-break: break-all; }
h2 { font-size: 16px; margin: 0 0 12px; font-weight: 650; }
h3 { font-size: 13px; margin: 18px 0 8px; font-weight: 650; color: var(--muted); }
.meta { color: var(--muted); margin: 2px 0; word-break: break-all; }
.meta b { color: var(--ink); font-weight: 600; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 12px; font-weight: 700;
         letter-spacing: 0.04em; vertical-align: 3px; margin-left: 8px; }
.SUCCEEDED { background: var(--ok-bg); color: var(--ok); }
.PARTIAL { background: var(--warn-bg); color: var(--warn); }
.FAILED, .REJECTED { background: var(--bad-bg); color: var(--bad); }
.standin { background: #eef2ff; color: #3730a3; border: 1px solid #c7d2fe; border-radius: 6px; padding: 8px 12px;
           margin: 12px 0 0; }
.alert { background: var(--bad-bg); color: var(--bad); border-radius: 6px; padding: 10px 14px; margin: 12px 0 0;
         word-break: break-word; }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 18px 20px; margin: 16px 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(112px, 1fr)); gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; background: #fff; }
.card .label { color: var(--muted); font-size: 12px; font-weight: 600; }
.card .value { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .note { color: var(--muted); font-size: 12px; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
@media (max-width: 800px) { .grid2 { grid-template-columns: 1fr; } }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12px; background: var(--soft); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.text { white-space: pre-wrap; word-break: break-word; max-width: 420px; }
td.id { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; word-break: break-all; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; background: var(--soft);
       padding: 1px 5px; border-radius: 4px; word-break: break-all; }
.chart { overflow-x: auto; margin: 6px 0 4px; }
.chart svg { max-width: 100%; height: auto; }
.hint { color: var(--muted); font-size: 12px; margin: 6px 0 0; }
.yes { color: var(--ok); font-weight: 600; } .no { color: var(--bad); font-weight: 600; }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
footer { color: var(--muted); font-size: 12px; margin-top: 24px; }
"""


def _e(value: Any) -> str:
    """Any value as escaped HTML text ('-' for nothing)."""
    return "-" if value is None else html.escape(str(value), quote=True)


def _number(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return _e(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _e(value)


def console_url(uri: str, region: str | None = None) -> str | None:
    """The S3 console page of an s3:// object or folder (commercial partition only; None elsewhere)."""
    env = settings.current()
    region = region or env.region or env.default_region
    if not uri.startswith("s3://") or not region or region.startswith(("cn-", "us-gov-", "us-iso")):
        return None
    bucket, _, key = uri[len("s3://") :].partition("/")
    kind = "buckets" if not key or key.endswith("/") else "object"
    return (
        f"https://{region}.console.aws.amazon.com/s3/{kind}/{quote(bucket, safe='')}?region={quote(region)}"
        f"&prefix={quote(key, safe='')}"
    )


def _location(uri: str) -> str:
    link = console_url(uri)
    console = f' <a href="{_e(link)}" rel="noreferrer">S3 console</a>' if link else ""
    return f"<code>{_e(uri)}</code>{console}"


def _cards(items: Iterable[tuple[str, Any, str | None]]) -> str:
    cells = "".join(
        f'<div class="card"><div class="label">{_e(label)}</div><div class="value">{_number(value)}</div>'
        + (f'<div class="note">{_e(note)}</div>' if note else "")
        + "</div>"
        for label, value, note in items
    )
    return f'<div class="cards">{cells}</div>'


def _table(headers: list[tuple[str, str]], rows: Iterable[list[str]]) -> str:
    head = "".join(f'<th class="{cls}">{_e(name)}</th>' for name, cls in headers)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{cls}">{cell}</td>' for (_, cls), cell in zip(headers, row, strict=True))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _chart(name: str, draw: Callable[[], str]) -> str:
    try:
        svg = draw()
    except Exception as error:  # a chart must never cost the page (nor the run its manifest): say so instead
        return f'<p class="hint">Chart not drawn ({_e(type(error).__name__)}: {_e(error)}).</p>'
    return f'<div class="chart" data-chart="{_e(name)}" role="img" aria-label="{_e(name)}">{svg}</div>'


def _page(title: str, body: str) -> str:
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Nothing may load or run, whatever a record holds.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        'img-src data:">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>{body}"
        f"<footer>Generated {_e(generated)} by llm-batch-pipeline. Self-contained: this page loads nothing.</footer>"
        "</main></body></html>\n"
    )


# ---------------------------------------------------------------------------------------------------- a run


def render_run_report(
    manifest: dict[str, Any], evaluation: dict[str, Any] | None = None, aggregates: dict[str, Any] | None = None
) -> str:
    """The page for a finished or failed run: `manifest` as written to manifest.json, the evaluation step's result,
    and collect's ReportAggregates (None when the run never got to collect)."""
    status = manifest.get("status") or "UNKNOWN"
    parts = [_run_header(manifest, status), _counts_section(manifest), _tokens_section(manifest)]
    parts.append(_evaluation_section(evaluation or {}, aggregates or {}))
    parts.append(_errors_section(manifest, aggregates or {}))
    parts.append(_examples_section(aggregates or {}))
    parts.append(_jobs_section(manifest))
    parts.append(_files_section(manifest.get("outputs") or {}))
    return _page(f"Run {manifest.get('run_id')} {status}", "".join(p for p in parts if p))


def _run_header(manifest: dict[str, Any], status: str) -> str:
    source = manifest.get("input") or {}
    timings = manifest.get("timings") or {}
    lines = [
        f'<h1>Run {_e(manifest.get("run_id"))}<span class="badge {_e(status)}">{_e(status)}</span></h1>',
        f'<p class="meta">Pipeline <b>{_e(manifest.get("pipeline"))}</b> on <b>{_e(manifest.get("backend"))}</b>'
        f" &middot; model <b>{_e(manifest.get('model'))}</b></p>",
    ]
    if source:
        version = f" (version {_e(source.get('version_id'))})" if source.get("version_id") else ""
        lines.append(
            f'<p class="meta">Input <code>s3://{_e(source.get("bucket"))}/{_e(source.get("key"))}</code>{version}</p>'
        )
    duration = timings.get("duration_seconds")
    lines.append(
        f'<p class="meta">Started {_e(timings.get("started_at"))} &middot; finished '
        f"{_e(timings.get('finished_at'))}" + (f" &middot; <b>{_duration(duration)}</b>" if duration else "") + "</p>"
    )
    if manifest.get("local_stand_in"):
        lines.append(
            '<p class="standin">Local mode: the model was played by a local stand-in engine, so the outputs '
            "and scores exercise the pipeline, not a model.</p>"
        )
    if manifest.get("cause"):
        lines.append(
            f'<p class="alert"><b>{_e(manifest.get("failed_state") or "Jobs")}: {_e(manifest.get("error"))}'
            f"</b> &mdash; {_e(manifest['cause'])}</p>"
        )
    recover = manifest.get("recover") or {}
    if recover.get("command"):
        lines.append(
            f'<p class="meta">Recover without paying again: <code>{_e(recover["command"])}</code> '
            f"({_e(recover.get('how'))})</p>"
        )
    return "<header>" + "".join(lines) + "</header>"


def _duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {rest:02d} s"


def _counts_section(manifest: dict[str, Any]) -> str:
    counts = manifest.get("counts") or {}
    notes = {
        "total": "lines with a record",
        "valid": "passed intake",
        "rejected": "skipped by intake",
        "processed": "the model answered",
        "succeeded": "with a prediction",
        "failed": "no prediction",
    }
    cards = [
        (name, counts.get(name), notes.get(name))
        for name in ("total", "valid", "rejected", "processed", "succeeded", "failed")
        if name in counts
    ]
    jobs = manifest.get("jobs") or []
    invocations = (manifest.get("model_invocations") or {}).get("total")
    cards.append(("jobs", manifest.get("jobs_count", len(jobs)), None))
    if invocations is not None:
        cards.append(("model invocations", invocations, "billed requests"))
    return f"<section><h2>Records and jobs</h2>{_cards(cards)}</section>"


def _tokens_section(manifest: dict[str, Any]) -> str:
    tokens = manifest.get("tokens") or {}
    cost = manifest.get("cost") or {}
    if not tokens and not cost:
        return ""
    cards: list[tuple[str, Any, str | None]] = []
    if tokens:
        cards += [
            ("input tokens", tokens.get("input_tokens"), None),
            ("output tokens", tokens.get("output_tokens"), None),
        ]
    if cost.get("usd") is not None:
        cards.append(
            (
                "cost",
                f"${cost['usd']:,.4f}" if isinstance(cost["usd"], (int, float)) else cost["usd"],
                f"{cost.get('route') or ''} {cost.get('model') or ''}".strip() or None,
            )
        )
        parts = (("input_usd", "input cost"), ("output_usd", "output cost"), ("instance_usd", "instance cost"))
        for key, label in parts:
            if isinstance(cost.get(key), (int, float)):
                cards.append((label, f"${cost[key]:,.4f}", None))
    notes = []
    if cost.get("basis"):
        notes.append(_e(cost["basis"]))
    if cost.get("prices_as_of") or cost.get("source"):
        notes.append(f"prices as of {_e(cost.get('prices_as_of'))}, from <code>{_e(cost.get('source'))}</code>")
    hint = f'<p class="hint">{"; ".join(notes)}</p>' if notes else ""
    return f"<section><h2>Tokens and cost</h2>{_cards(cards)}{hint}</section>"


def _evaluation_section(evaluation: dict[str, Any], aggregates: dict[str, Any]) -> str:
    metric = evaluation.get("metric")
    if not metric:
        reason = evaluation.get("skipped") or "the run was not evaluated"
        histogram = _histogram(aggregates)
        return f'<section><h2>Evaluation</h2><p class="hint">Not evaluated: {_e(reason)}.</p>{histogram}</section>'
    headline: list[tuple[str, Any, str | None]]
    if metric == "rouge":
        rouge = evaluation.get("rouge") or {}
        headline = [
            (f"{name} F1", (rouge.get(name) or {}).get("fmeasure"), "mean over records")
            for name in ("rougeL", "rouge1", "rouge2")
            if name in rouge
        ]
    else:
        headline = [
            (name.replace("_", " "), evaluation.get(name), None)
            for name in ("accuracy", "macro_f1", "micro_f1", "hamming_loss")
            if name in evaluation
        ]
    target = "with a reference" if metric == "rouge" else "with a label"
    summary = _cards(
        [
            *headline,
            ("records", evaluation.get("records"), target),
            ("scored", evaluation.get("scored"), None),
            ("errors", evaluation.get("errors"), "not scored"),
            ("missing", evaluation.get("missing"), "reference without a record"),
        ]
    )
    body = _rouge(evaluation) if metric == "rouge" else _classification(evaluation)
    return f"<section><h2>Evaluation: {_e(metric)}</h2>{summary}{body}{_histogram(aggregates)}</section>"


def _rouge(evaluation: dict[str, Any]) -> str:
    rouge = evaluation.get("rouge") or {}
    bootstrap = evaluation.get("rouge_bootstrap") or {}
    headers = [("measure", ""), ("F1", "num"), ("precision", "num"), ("recall", "num")]
    if bootstrap:
        headers.append((f"F1 {round(100 * float(bootstrap.get('confidence', 0.95)))}% interval", "num"))
    rows = []
    for name, values in rouge.items():
        row = [_e(name), *(_number(values.get(measure)) for measure in ("fmeasure", "precision", "recall"))]
        if bootstrap:
            interval = (bootstrap.get(name) or {}).get("fmeasure") or {}
            row.append(f"{_number(interval.get('low'))} &ndash; {_number(interval.get('high'))}" if interval else "-")
        rows.append(row)
    note = (
        f'<p class="hint">Interval: bootstrap over records, {_number(bootstrap.get("samples"))} resamples, '
        f"seed {_e(bootstrap.get('seed'))}.</p>"
        if bootstrap
        else '<p class="hint">Means over scored records (F-measure as in rouge-score). No bootstrap interval was '
        "computed for this run (<code>batch-pipeline evaluate --bootstrap N</code> adds one).</p>"
    )
    return "<h3>ROUGE</h3>" + _table(headers, rows) + note


def _classification(evaluation: dict[str, Any]) -> str:
    per_class = evaluation.get("per_class") or {}
    table = _table(
        [("class", ""), ("precision", "num"), ("recall", "num"), ("F1", "num"), ("support", "num")],
        (
            [
                _e(label),
                _number(v.get("precision")),
                _number(v.get("recall")),
                _number(v.get("f1")),
                _number(v.get("support")),
            ]
            for label, v in per_class.items()
        ),
    )
    matrix = evaluation.get("confusion_matrix") or {}
    heat = ""
    if matrix.get("matrix") and not evaluation.get("multi_label"):
        labels, counts = charts.fold_classes([str(label) for label in matrix["labels"]], matrix["matrix"])
        heat = (
            "<h3>Confusion matrix</h3>"
            + _chart("confusion matrix", lambda: charts.heatmap(labels, counts))
            + '<p class="hint">Rows: reference label; columns: predicted label; cells: records.'
            + (
                f" The {charts.MAX_CLASSES - 1} busiest classes are shown; the rest are summed under "
                f"{_e(charts.OTHER_CLASS)}."
                if len(labels) < len(matrix["labels"])
                else ""
            )
            + "</p>"
        )
    return '<div class="grid2"><div><h3>Per class</h3>' + table + "</div><div>" + heat + "</div></div>"


def _histogram(aggregates: dict[str, Any]) -> str:
    histogram = aggregates.get("histogram")
    score = aggregates.get("score")
    if not histogram or not score:
        if aggregates.get("records") and not aggregates.get("scored"):
            return (
                '<p class="hint">No per-record score to chart: the records carry no reference or label, or the '
                "answers carry no confidence.</p>"
            )
        return ""
    title = "ROUGE-L F1 per record" if score == "rougeL F1" else "confidence of the answer (top label score)"
    return (
        f"<h3>Distribution of per-record {_e(score)}</h3>"
        + _chart(
            f"{score} histogram",
            lambda: charts.histogram(histogram["counts"], histogram["low"], histogram["high"], title),
        )
        + f'<p class="hint">{_number(aggregates.get("scored"))} scored records in '
        f"{_e(histogram['bins'])} bins.</p>"
    )


def _errors_section(manifest: dict[str, Any], aggregates: dict[str, Any]) -> str:
    rows = aggregates.get("errors_by_code") or []
    if not rows:
        failed = (manifest.get("counts") or {}).get("failed")
        return (
            ""
            if not failed
            else (
                f'<section><h2>Errors by reason</h2><p class="hint">{_number(failed)} records '
                "failed; errors.jsonl lists them.</p></section>"
            )
        )
    chart = _chart(
        "errors by reason", lambda: charts.bars([(r["code"], r["records"]) for r in rows], "records", color="#d64545")
    )
    table = _table(
        [("reason", ""), ("records", "num"), ("first message", "text")],
        ([f"<code>{_e(r['code'])}</code>", _number(r["records"]), _e(r.get("example"))] for r in rows),
    )
    return f"<section><h2>Errors by reason</h2>{chart}{table}</section>"


def _examples_section(aggregates: dict[str, Any]) -> str:
    best, worst = aggregates.get("best") or [], aggregates.get("worst") or []
    if not best and not worst:
        return ""
    classification = any(example.get("correct") is not None for example in best + worst)
    score_label = (
        "confidence" if aggregates.get("score") == "confidence" else ("score" if classification else "ROUGE-L F1")
    )

    def table(examples: list[dict[str, Any]]) -> str:
        headers = [("id", "id"), (score_label, "num")]
        if classification:
            headers.append(("correct", ""))
        headers += [("prediction", "text"), ("reference" if not classification else "label", "text")]
        rows = []
        for example in examples:
            row = [_e(example.get("id")), _number(example.get("score"))]
            if classification:
                row.append('<span class="yes">yes</span>' if example.get("correct") else '<span class="no">no</span>')
            rows.append([*row, _e(example.get("prediction")), _e(example.get("reference"))])
        return _table(headers, rows)

    how = (
        "Worst: wrong answers, most confident first; best: right answers, most confident first."
        if classification
        else "Ranked by ROUGE-L F1. Long texts are cut; predictions.jsonl has them whole."
    )
    return (
        f'<section><h2>Worst and best records</h2><p class="hint">{how}</p>'
        f"<h3>Worst {len(worst)}</h3>{table(worst)}<h3>Best {len(best)}</h3>{table(best)}</section>"
    )


def _jobs_section(manifest: dict[str, Any]) -> str:
    jobs = manifest.get("jobs") or []
    if not jobs:
        return ""
    rows = (
        [
            f"<code>{_e(j.get('name'))}</code>",
            _e(j.get("state")),
            _e(j.get("status")),
            _number(j.get("records")),
            _number(j.get("model_invocations")),
            _e(j.get("failure_reason")),
        ]
        for j in jobs[:JOBS_SHOWN]
    )
    more = (
        f'<p class="hint">{len(jobs) - JOBS_SHOWN:,} more jobs are listed in manifest.json.</p>'
        if len(jobs) > JOBS_SHOWN
        else ""
    )
    return (
        "<section><h2>Jobs</h2>"
        + _table(
            [
                ("job", ""),
                ("state", ""),
                ("backend status", ""),
                ("records", "num"),
                ("invocations", "num"),
                ("failure reason", "text"),
            ],
            rows,
        )
        + more
        + "</section>"
    )


def _files_section(outputs: dict[str, str]) -> str:
    if not outputs:
        return ""
    rows = ([_e(name), _location(uri)] for name, uri in outputs.items() if isinstance(uri, str))
    return "<section><h2>Files</h2>" + _table([("file", ""), ("location", "")], rows) + "</section>"


# ---------------------------------------------------------------------------------------------------- a rejection


def render_rejection_report(
    report: dict[str, Any],
    *,
    rejected_copy: str | None = None,
    report_json: str | None = None,
    run_id: str | None = None,
) -> str:
    """The page for a file intake rejected: why, the bad lines by reason (every reason counted, the first
    REJECTED_LINES_SHOWN lines of those the report kept), and where the copy and report.json are."""
    source = report.get("input") or {}
    name = source.get("key") or report.get("pipeline")
    header = [
        f'<h1>Rejected: {_e(name)}<span class="badge REJECTED">REJECTED</span></h1>',
        f'<p class="meta">Pipeline <b>{_e(report.get("pipeline"))}</b> &middot; format '
        f"<b>{_e(report.get('input_format'))}</b> &middot; policy <b>{_e(report.get('policy'))}</b>"
        + (f" &middot; run id <code>{_e(run_id)}</code>" if run_id else "")
        + "</p>",
    ]
    if source:
        header.append(
            f'<p class="meta">Input <code>s3://{_e(source.get("bucket"))}/{_e(source.get("key"))}</code>'
            + (f" (version {_e(source.get('version_id'))})" if source.get("version_id") else "")
            + "</p>"
        )
    header.append(f'<p class="alert"><b>No job was started.</b> {_e(report.get("reason"))}</p>')
    totals, counts = report.get("totals") or {}, report.get("counts") or {}
    cards = _cards(
        [
            ("lines", totals.get("lines"), None),
            ("records", counts.get("total"), None),
            ("valid", counts.get("valid"), None),
            ("rejected", counts.get("rejected"), None),
            ("blank lines", totals.get("blank_lines"), None),
        ]
    )
    reasons = list((report.get("counts_by_reason") or {}).items())
    chart = _chart("bad lines by reason", lambda: charts.bars(reasons, "lines", color="#d64545")) if reasons else ""
    reason_table = _table(
        [("reason", ""), ("lines", "num")], ([f"<code>{_e(code)}</code>", _number(count)] for code, count in reasons)
    )
    errors = report.get("errors") or []
    shown = errors[:REJECTED_LINES_SHOWN]
    lines_table = _table(
        [("line", "num"), ("reason", ""), ("field", "id"), ("what is wrong", "text")],
        (
            [_number(e.get("line")), f"<code>{_e(e.get('code'))}</code>", _e(e.get("field")), _e(e.get("reason"))]
            for e in shown
        ),
    )
    kept = sum(count for _, count in reasons)
    more = (
        f'<p class="hint">The first {len(shown):,} of {kept:,} bad lines; report.json keeps '
        f"{_number(report.get('errors_reported'))}.</p>"
        if kept > len(shown)
        else ""
    )
    files = {key: value for key, value in (("rejected copy", rejected_copy), ("report.json", report_json)) if value}
    warnings = report.get("warnings") or []
    warning_html = (
        ("<section><h2>Warnings</h2><ul>" + "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul></section>")
        if warnings
        else ""
    )
    body = (
        "<header>"
        + "".join(header)
        + "</header>"
        + f"<section><h2>Lines</h2>{cards}</section>"
        + f'<section><h2>Bad lines by reason</h2><div class="grid2"><div>{chart}</div><div>{reason_table}</div>'
        + f"</div><h3>First bad lines</h3>{lines_table}{more}</section>"
        + warning_html
        + _files_section(files)
        + "<section><h2>What now</h2><p>Fix the lines above (or set the pipeline's <code>on_invalid</code> "
        "policy to <code>skip</code>) and upload the file again. The original upload was not changed or "
        "deleted; the copy above is what intake read.</p></section>"
    )
    return _page(f"Rejected {name}", body)
