"""The run report: one self-contained HTML file with Plotly figures.

Per sensor it shows the telemetry with its forecast and the predicted (red; orange: still open
when the series ended) and labelled (green) anomaly bands, and the smoothed errors against the
dynamic threshold. Across sensors: the point-level confusion matrix, ROC curves, the KPI table,
drift and quality summaries, and model versions with links to their MLflow runs. Plotly's
JavaScript is inlined once, so the file opens offline.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots


@dataclass(frozen=True)
class SensorReport:
    """What the report shows for one sensor.

    ``values`` covers the whole test series ``[T]``; ``forecast``, ``smoothed_errors``,
    ``threshold`` and ``point_scores`` cover indices ``offset .. T-1`` (``offset`` = l_s).
    Intervals are inclusive test-series indices. ``predicted`` are the detector's final
    sequences; ``still_open`` is the one it had not closed when the series ended (counted in
    ``counts``, drawn in orange).
    """

    sensor_id: str
    values: npt.NDArray[np.float32]
    offset: int
    forecast: npt.NDArray[np.float32]
    smoothed_errors: npt.NDArray[np.float32]
    threshold: npt.NDArray[np.float32]
    predicted: tuple[tuple[int, int], ...]
    labelled: tuple[tuple[int, int], ...]
    kpis: dict[str, float]
    counts: dict[str, int] | None
    still_open: tuple[int, int] | None = None
    model_name: str = ""
    model_version: str = ""
    run_url: str = ""
    quality: dict[str, str] = field(default_factory=dict)
    drift: dict[str, str] = field(default_factory=dict)
    roc: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None
    roc_auc: float | None = None


@dataclass(frozen=True)
class RunReport:
    """Everything one run of the main job reports."""

    title: str
    sensors: tuple[SensorReport, ...]
    confusion: dict[str, int]  # point-level tp, fp, fn, tn summed over sensors
    totals: dict[str, float]  # event-level precision, recall, f1 ...
    retraining: tuple[dict[str, str], ...] = ()
    notes: tuple[str, ...] = ()
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def sensor_figure(s: SensorReport) -> go.Figure:
    """Telemetry + forecast + bands (top) and smoothed errors vs threshold (bottom): 4 traces."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        row_heights=[0.6, 0.4],
        subplot_titles=(f"{s.sensor_id}: telemetry and forecast", "smoothed error and dynamic threshold"),
    )
    idx = np.arange(len(s.values))
    fidx = np.arange(s.offset, s.offset + len(s.forecast))
    fig.add_trace(go.Scattergl(x=idx, y=s.values, name="telemetry", line={"color": "#1f77b4", "width": 1}), 1, 1)
    fig.add_trace(go.Scattergl(x=fidx, y=s.forecast, name="forecast", line={"color": "#ff7f0e", "width": 1}), 1, 1)
    fig.add_trace(
        go.Scattergl(x=fidx, y=s.smoothed_errors, name="smoothed error", line={"color": "#7f7f7f", "width": 1}), 2, 1
    )
    fig.add_trace(
        go.Scattergl(x=fidx, y=s.threshold, name="threshold", line={"color": "#d62728", "dash": "dash", "width": 1}),
        2,
        1,
    )
    for start, end in s.labelled:
        fig.add_vrect(x0=start, x1=end, fillcolor="#2ca02c", opacity=0.25, line_width=0, row="all", col=1)
    for start, end in s.predicted:
        fig.add_vrect(x0=start, x1=end, fillcolor="#d62728", opacity=0.2, line_width=0, row="all", col=1)
    if s.still_open is not None:
        start, end = s.still_open
        fig.add_vrect(x0=start, x1=end, fillcolor="#ff7f0e", opacity=0.2, line_width=0, row="all", col=1)
    fig.update_layout(height=460, margin={"l": 40, "r": 10, "t": 40, "b": 30}, legend={"orientation": "h"})
    return fig


def confusion_figure(confusion: dict[str, int]) -> go.Figure:
    """Point-level confusion matrix (rows: truth, columns: prediction)."""
    z = [[confusion.get("tn", 0), confusion.get("fp", 0)], [confusion.get("fn", 0), confusion.get("tp", 0)]]
    text = [[f"TN {z[0][0]}", f"FP {z[0][1]}"], [f"FN {z[1][0]}", f"TP {z[1][1]}"]]
    fig = go.Figure(
        go.Heatmap(
            z=np.log10(np.asarray(z, dtype=float) + 1).tolist(),
            x=[0, 1],
            y=[0, 1],
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            showscale=False,
            hoverinfo="text",
        )
    )
    fig.update_xaxes(tickvals=[0, 1], ticktext=["predicted normal", "predicted anomalous"])
    fig.update_yaxes(tickvals=[0, 1], ticktext=["normal", "anomalous"])
    fig.update_layout(
        title="point-level confusion matrix", height=300, width=560, margin={"l": 90, "r": 10, "t": 40, "b": 30}
    )
    return fig


def roc_figure(sensors: Sequence[SensorReport]) -> go.Figure:
    """One ROC curve per labelled sensor, from per-point anomaly scores."""
    fig = go.Figure()
    for s in sensors:
        if s.roc is None:
            continue
        fpr, tpr = s.roc
        auc = f" (AUC {s.roc_auc:.3f})" if s.roc_auc is not None else ""
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"{s.sensor_id}{auc}"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "#999"}))
    fig.update_layout(
        title="ROC of per-point scores",
        xaxis_title="false positive rate",
        yaxis_title="true positive rate",
        height=360,
        margin={"l": 50, "r": 10, "t": 40, "b": 40},
    )
    return fig


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, tuple) and len(value) == 2 and str(value[1]).startswith("http"):
        return f'<a href="{html.escape(str(value[1]))}">{html.escape(str(value[0]))}</a>'
    return html.escape(str(value))


def _div(fig: go.Figure, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config={"responsive": True})


_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}
th{background:#f4f4f4}h2{border-bottom:1px solid #ddd;padding-bottom:4px}
"""


def render_report(report: RunReport, path: str | Path) -> Path:
    """Write ``report`` as one self-contained HTML file and return its path."""
    sensors = report.sensors
    kpi_rows = [
        [
            s.sensor_id,
            s.kpis.get("mae", float("nan")),
            s.kpis.get("rmse", float("nan")),
            s.kpis.get("mape", float("nan")),
            s.kpis.get("r2", float("nan")),
            *(("-", "-", "-") if s.counts is None else (s.counts["tp"], s.counts["fp"], s.counts["fn"])),
        ]
        for s in sensors
    ]
    state_rows = [
        [
            s.sensor_id,
            s.quality.get("status", "-"),
            s.quality.get("reasons", ""),
            s.drift.get("severity", "-"),
            s.drift.get("detail", ""),
        ]
        for s in sensors
    ]
    model_rows = [
        [s.sensor_id, s.model_name or "-", s.model_version or "-", ("run", s.run_url) if s.run_url else "-"]
        for s in sensors
    ]
    totals = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in report.totals.items())
    parts = [
        f"<h1>{html.escape(report.title)}</h1><p>created {html.escape(report.created)}</p>",
        f"<h2>Detection</h2><p id='totals'>event-level: {html.escape(totals)}</p>",
        _table(["sensor", "MAE", "RMSE", "MAPE %", "R²", "TP", "FP", "FN"], kpi_rows),
        _div(confusion_figure(report.confusion), "confusion"),
        _div(roc_figure(sensors), "roc"),
        "<h2>Data quality and drift</h2>",
        _table(["sensor", "quality", "reasons", "drift severity", "drift detail"], state_rows),
        "<h2>Models</h2>",
        _table(["sensor", "registered model", "version", "MLflow"], model_rows),
    ]
    if report.retraining:
        keys = list(report.retraining[0])
        parts += ["<h2>Retraining</h2>", _table(keys, [[e.get(k, "") for k in keys] for e in report.retraining])]
    parts.append("<h2>Sensors</h2>")
    for s in sensors:
        parts.append(f"<section class='sensor' id='sensor-{html.escape(s.sensor_id)}'>")
        parts.append(_div(sensor_figure(s), f"fig-{s.sensor_id}"))
        parts.append("</section>")
    if report.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in report.notes) + "</ul>")
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(report.title)}</title><style>{_CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>" + "\n".join(parts) + "</body></html>"
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
