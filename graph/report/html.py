"""The report as one self-contained HTML file: plotly figures with plotly.js inlined.

The file loads nothing from the network: the plotting library's script is embedded once, and
each figure is a ``div`` drawn by it. Every figure has a title (what the browser test looks
for); the tables are plain HTML.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

TITLES = {
    "latency": "Latency per node (p50 / p95 / p99)",
    "e2e": "End-to-end latency per decision",
    "outcomes": "Decision outcomes",
    "reviews": "Review decisions and refusals",
    "tools": "Tool error and retry ratios",
    "drift": "Drift signals",
    "evals": "Evaluation scores",
}
"""Each figure's title, by section."""

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1f2933;
background:#f7f8fa}
h1{margin:0 0 4px}h2{margin:28px 0 8px}.meta{color:#616e7c;margin-bottom:16px}
.tiles{display:flex;flex-wrap:wrap;gap:12px}.tile{background:#fff;border-radius:8px;
padding:12px 16px;min-width:150px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.tile b{display:block;font-size:22px}.tile span{color:#616e7c;font-size:13px}
.fig{background:#fff;border-radius:8px;margin:12px 0;padding:8px;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
table{border-collapse:collapse;background:#fff;font-size:14px;margin:8px 0}
th,td{padding:6px 10px;border-bottom:1px solid #e4e7eb;text-align:left}
.flag{color:#c62828;font-weight:600}
"""


def _figure(key: str, fig: go.Figure) -> str:
    fig.update_layout(
        title={"text": TITLES[key]},
        template="plotly_white",
        height=380,
        margin={"t": 60, "l": 60, "r": 20, "b": 60},
    )
    body = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{key}")
    return f'<div class="fig" data-title="{html.escape(TITLES[key])}">{body}</div>'


def _latency(report: dict[str, Any]) -> go.Figure:
    lat = report["latency"]
    names = [*lat["nodes"], "end to end"]
    stats = [*lat["nodes"].values(), lat["end_to_end"]]
    fig = go.Figure()
    for q in ("p50", "p95", "p99"):
        fig.add_bar(name=q, x=names, y=[s.get(q, 0) * 1000 for s in stats])
    fig.update_layout(barmode="group", yaxis_title="milliseconds")
    return fig


def _e2e(report: dict[str, Any]) -> go.Figure:
    fig = go.Figure(go.Histogram(x=[s * 1000 for s in report["latency"]["samples"]], nbinsx=40))
    fig.update_layout(xaxis_title="milliseconds (human wait excluded)", yaxis_title="decisions")
    return fig


def _outcomes(report: dict[str, Any]) -> go.Figure:
    st = report["rates"]["statuses"]
    return go.Figure(go.Bar(x=list(st), y=list(st.values()), marker_color="#3f51b5")).update_layout(
        yaxis_title="share of decisions", yaxis_tickformat=".0%"
    )


def _reviews(report: dict[str, Any]) -> go.Figure:
    r = report["rates"]
    review = ["approve", "edit", "reject", "respond"]
    refusal = ["deny", "refuse", "cannot_plan"]
    fig = go.Figure()
    fig.add_bar(name="of reviewer decisions", x=review, y=[r[k] for k in review])
    fig.add_bar(name="of decisions", x=refusal, y=[r[k] for k in refusal])
    fig.update_layout(yaxis_tickformat=".0%")
    return fig


def _tools(report: dict[str, Any]) -> go.Figure:
    tools = report["tools"]
    fig = go.Figure()
    fig.add_bar(name="error ratio", x=list(tools), y=[t["error_ratio"] for t in tools.values()])
    fig.add_bar(name="retry ratio", x=list(tools), y=[t["retry_ratio"] for t in tools.values()])
    fig.update_layout(
        barmode="group", yaxis_tickformat=".0%", xaxis_tickangle=-30, yaxis_rangemode="tozero"
    )
    top = max(
        [
            0.05,
            *(t["error_ratio"] for t in tools.values()),
            *(t["retry_ratio"] for t in tools.values()),
        ]
    )
    fig.update_yaxes(range=[0, top * 1.1])
    return fig


def _drift(report: dict[str, Any]) -> go.Figure:
    signals = report["drift"]["signals"]
    names = [s["name"] for s in signals]
    values = [s["value"] if s["statistic"] == "psi" else 1 - (s["p_value"] or 1) for s in signals]
    colors = ["#c62828" if s["flagged"] else "#607d8b" for s in signals]
    fig = go.Figure(go.Bar(x=names, y=values, marker_color=colors))
    fig.add_hline(
        y=report["drift"]["thresholds"]["psi"], line_dash="dash", annotation_text="PSI 0.2"
    )
    fig.update_layout(
        yaxis_title="PSI (mixes) / 1 − p (rates)", xaxis_tickangle=-30, showlegend=False
    )
    return fig


def _evals(report: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    for summary in report["evals"]:
        metrics = {
            k: v["mean"]
            for k, v in summary.get("metrics", {}).items()
            if k not in ("latency_s", "tokens", "cost")
        }
        fig.add_bar(name=str(summary.get("experiment")), x=list(metrics), y=list(metrics.values()))
    fig.update_layout(barmode="group", yaxis_tickformat=".0%", yaxis_range=[0, 1.05])
    return fig


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def render(report: dict[str, Any]) -> str:
    """The report document as one HTML page."""
    w = report["window"]
    lat = report["latency"]["end_to_end"]
    rates = report["rates"]
    usage = report["usage"]
    tiles = [
        ("decisions", str(w["decisions"])),
        ("p95 end to end", f"{lat.get('p95', 0) * 1000:.0f} ms"),
        ("p99 end to end", f"{lat.get('p99', 0) * 1000:.0f} ms"),
        ("human wait p95", f"{report['latency']['human_wait'].get('p95', 0):.2f} s"),
        ("approval rate", f"{rates['approve']:.0%}"),
        ("deny rate", f"{rates['deny']:.0%}"),
        ("cannot plan", f"{rates['cannot_plan']:.0%}"),
        ("compensations", str(report["compensations"])),
        ("tokens / decision", f"{usage['tokens_per_decision']:g}"),
        (
            "cost / decision",
            "n/a" if usage["cost_per_decision"] is None else f"${usage['cost_per_decision']:.5f}",
        ),
    ]
    tile_html = "".join(f'<div class="tile"><b>{v}</b><span>{k}</span></div>' for k, v in tiles)
    drift = report["drift"]
    flagged = drift["flagged"]
    parts = [
        "<h2>Latency</h2>",
        _figure("latency", _latency(report)),
        _figure("e2e", _e2e(report)),
        "<h2>Outcomes</h2>",
        _figure("outcomes", _outcomes(report)),
        _figure("reviews", _reviews(report)),
        "<h2>Tools</h2>",
        _figure("tools", _tools(report)),
        _table(
            [{"tool": k, **v} for k, v in report["tools"].items()],
            ["tool", "calls", "error_ratio", "retry_ratio", "compensated"],
        ),
        f"<h2>By {html.escape(report['groups']['by'])}</h2>",
        _table(
            report["groups"]["rows"],
            [
                "group",
                "decisions",
                "approve",
                "deny",
                "cannot_plan",
                "p95_s",
                "tokens_per_decision",
            ],
        ),
        "<h2>Drift</h2>",
        f"<p>{html.escape(drift['baseline']['label'])} ({drift['baseline']['decisions']} decisions)"
        f" against {html.escape(drift['current']['label'])} ({drift['current']['decisions']})."
        f" Flagged: PSI &gt; {drift['thresholds']['psi']} or chi-square p &lt; "
        f"{drift['thresholds']['p_value']} (at least {drift['thresholds']['min_n']} a side). "
        + (
            f'<span class="flag">{html.escape(", ".join(flagged))}</span>'
            if flagged
            else "Nothing flagged."
        )
        + "</p>",
    ]
    if drift["signals"]:
        parts.append(_figure("drift", _drift(report)))
        parts.append(
            _table(
                [{**s, "flagged": "yes" if s["flagged"] else ""} for s in drift["signals"]],
                ["name", "statistic", "value", "p_value", "flagged"],
            )
        )
    if report["evals"]:
        parts += ["<h2>Evaluations</h2>", _figure("evals", _evals(report))]
    generated = datetime.fromtimestamp(w["to"], UTC).isoformat(timespec="seconds")
    since = datetime.fromtimestamp(w["from"], UTC).isoformat(timespec="seconds")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<title>planbound report</title>"
        f"<style>{_STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
        "<h1>planbound report</h1>"
        f"<div class='meta'>{since} to {generated} (window {html.escape(str(w['since']))})</div>"
        f"<div class='tiles'>{tile_html}</div>"
        + "".join(parts)
        + f"<script type='application/json' id='report-data'>{_json_script(report)}</script>"
        "</body></html>"
    )


def _json_script(report: dict[str, Any]) -> str:
    return json.dumps(report, default=str).replace("</", "<\\/")
