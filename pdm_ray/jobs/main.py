"""The main job: data check -> Tune sweep -> registry -> Serve -> HTTP replay through the actors -> scores -> report.

``pdm-ray run`` (and so ``make run``) and the Ray job entry point ``python -m
pdm_ray.jobs.fleet`` both call ``run_main_job``. Each step is numbered; a failing step raises
``JobStepError`` naming the step and the cause.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from pdm_ray.config import Settings
from pdm_ray.data.channels import Channel, load_channels
from pdm_ray.errors import ConfigError, JobStepError

if TYPE_CHECKING:
    from pdm_ray.retraining import HistoryEntry, RetrainingHistory
    from pdm_ray.streaming import SensorSeries

log = logging.getLogger(__name__)
Printer = Callable[[str], None]


@dataclass(frozen=True)
class JobOptions:
    """Switches of one run: ``retrain`` ignores registered models; ``serve_forever`` keeps the API up."""

    retrain: bool = False
    serve_forever: bool = False


@dataclass
class SensorOutcome:
    """What the job learned about one sensor (filled in step by step).

    ``events`` are the ones the ingest acks reported; ``open_event`` is the sequence still open
    when the replay ended and ``judged`` how many readings the detector judged (see
    ``_adopt_stream``); ``stream`` is what the actor scored.
    """

    channel: Channel
    model_name: str = ""
    model_version: str = ""
    run_id: str = ""
    events: list[tuple[int, int, float]] = field(default_factory=list)
    open_event: tuple[int, int, float] | None = None
    judged: int = 0
    accepted: int = 0
    status: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, str] = field(default_factory=dict)
    stream: SensorSeries | None = None

    @property
    def detected(self) -> list[tuple[int, int]]:
        """Inclusive intervals scored as detected: the reported events and the one still open."""
        found = [(s, e) for s, e, _ in self.events]
        return [*found, self.open_event[:2]] if self.open_event is not None else found


@dataclass(frozen=True)
class JobResult:
    """The run's headline numbers and where its report is."""

    report: Path
    counts: dict[str, int]
    precision: float
    recall: float
    f1: float
    seconds: float


class _Steps:
    """Numbered steps with timings; any exception becomes a ``JobStepError`` naming the step."""

    def __init__(self, out: Printer) -> None:
        self.out = out
        self.n = 0

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.n += 1
        self.out(f"\n[{self.n}] {name}")
        start = time.perf_counter()
        try:
            yield
        except JobStepError:
            raise
        except Exception as exc:  # PdmError or anything a library raised: name the step
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise JobStepError(f"step {self.n} ({name}) failed: {detail}") from exc
        self.out(f"    done in {time.perf_counter() - start:.1f}s")


def _table(headers: list[str], rows: list[list[object]]) -> str:
    from pdm_ray.cli.common import format_table

    return "\n".join("    " + line for line in format_table(headers, rows).splitlines())


def _quality(channels: list[Channel], settings: Settings, outcomes: dict[str, SensorOutcome], out: Printer) -> None:
    from pdm_ray.data.quality import assess_quality, learn_bounds

    rows = []
    for ch in channels:
        train = assess_quality(ch.train[:, 0], settings.quality)
        test = assess_quality(ch.test[:, 0], settings.quality, bounds=learn_bounds(ch.train[:, 0], 0.1))
        reasons = "; ".join(r.split(" (")[0] for r in train.reasons) or "-"
        outcomes[ch.id].quality = {"status": train.status.name.lower(), "reasons": reasons}
        rows.append([ch.id, len(ch.train), len(ch.test), train.status.name.lower(), test.status.name.lower(), reasons])
    out(_table(["channel", "train", "test", "train quality", "test quality", "train reasons"], rows))


def _models(
    channels: list[Channel], settings: Settings, options: JobOptions, outcomes: dict[str, SensorOutcome], out: Printer
) -> None:
    """Train ``train.model`` where it has no production version, then name the version that scores each sensor.

    The sensor actors' forecaster (``ModelHost`` or the Serve deployment) takes the first of
    ``serve.model_kinds`` with a production version, which need not be the kind trained here;
    the report attributes the replay to that version.
    """
    from pdm_ray.errors import RegistryError, UnknownSensorError
    from pdm_ray.tracking.registry import model_name
    from pdm_ray.tracking.resolve import production_version
    from pdm_ray.tracking.runs import connect_settings
    from tuning.sweep import run_sweep

    kind = settings.train.model
    tracking = connect_settings(settings)
    to_train = []
    for ch in channels:
        try:
            if options.retrain:
                raise UnknownSensorError("retrain requested")
            production_version(tracking, ch.id, (kind,))
        except (UnknownSensorError, RegistryError):
            to_train.append(ch.id)
    reused = [c.id for c in channels if c.id not in to_train]
    if reused:
        out(f"    reusing production models for {', '.join(reused)} (--retrain to train again)")
    if to_train:
        run = settings.run
        small = settings.model_copy(
            update={"train": settings.train.model_copy(update={"epochs": run.epochs, "patience": run.epochs})}
        )
        out(
            f"    Tune sweep: {len(to_train)} channel(s) x {run.sweep_samples} trial(s) of {kind}, "
            f"{run.epochs} epochs each, learning rate in {run.learning_rates}; every trial logged to MLflow"
        )
        result = run_sweep(
            to_train,
            kind,
            settings=small,
            data_dir=settings.data.dir,
            search_space={"learning_rate": {"choice": list(run.learning_rates)}},
            num_samples=run.sweep_samples,
            promote_best=True,
        )
        rows = []
        for best in result.channels:
            d = best.decision
            rows.append(
                [
                    best.channel,
                    best.trials,
                    best.val_loss,
                    best.val_ratio,
                    best.version,
                    "promoted" if d is not None and d.promoted else "kept staging",
                ]
            )
        out(_table(["channel", "trials", "val MSE", "val/naive", "version", "gate"], rows))
        if result.failed:
            failed = ", ".join(f"{k}: {v}" for k, v in result.failed.items())
            raise JobStepError(f"training, registering or promotion failed for {failed}")
    kinds = tuple(settings.serve.model_kinds)
    for ch in channels:
        v = production_version(tracking, ch.id, kinds)
        o = outcomes[ch.id]
        o.model_name, o.model_version, o.run_id = v.name, v.version, v.run_id or ""
        if v.name != model_name(ch.id, kind):
            out(f"    note: {ch.id} is scored by {v.name} v{v.version}, not {kind}: serve.model_kinds is {list(kinds)}")
    out(
        _table(
            ["channel", "production model", "version"],
            [[o.channel.id, o.model_name, o.model_version] for o in outcomes.values()],
        )
    )


def _fresh_fleet(settings: Settings, channels: list[Channel]) -> None:
    import ray

    from actors.fleet import fleet_handle
    from actors.forecaster import production_forecaster

    fleet = fleet_handle(settings, production_forecaster(settings))
    # The demo replays recorded test series: start each demo sensor from a clean state.
    ray.get([fleet.remove.remote(ch.id, True) for ch in channels])


def _deploy(settings: Settings, out: Printer) -> str:
    from serve_apps.app import run_app

    run_app(settings)
    url = f"http://{settings.serve.host}:{settings.serve.port}"
    out(f"    API on {url} (docs at {url}/docs, dashboard at {url}/dashboard)")
    return url


def _replay(url: str, settings: Settings, outcomes: dict[str, SensorOutcome], out: Printer) -> None:
    import httpx
    import ray

    from actors.fleet import fleet_handle
    from pdm_ray.cli.common import progress

    size = settings.run.replay_batch_size
    headers = {"Authorization": f"Bearer {settings.serve.auth_token}"} if settings.serve.auth_token else {}
    total = sum(len(o.channel.test) for o in outcomes.values())
    lock = threading.Lock()
    out(f"    POST {url}/v1/sensors/<id>/readings: {total} readings in batches of {size}")

    with progress(total, "replay") as bar:

        def send(o: SensorOutcome) -> None:
            test = o.channel.test
            with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
                for seq, start in enumerate(range(0, len(test), size)):
                    chunk = test[start : start + size]
                    body = {
                        "seq": seq,
                        "timestamps": [float(t) for t in range(start, start + len(chunk))],
                        "values": chunk[:, 0].tolist(),
                        "commands": chunk[:, 1:].tolist() if chunk.shape[1] > 1 else None,
                    }
                    resp = client.post(f"/v1/sensors/{o.channel.id}/readings", json=body)
                    if resp.status_code != 200:
                        raise JobStepError(f"{o.channel.id}: HTTP {resp.status_code}: {resp.text[:300]}")
                    ack = resp.json()["ack"]
                    o.accepted += int(ack["accepted"])
                    o.events += [(int(e["start"]), int(e["end"]), float(e["score"])) for e in ack.get("events", [])]
                    with lock:
                        bar.update(len(chunk))
                o.status = client.get(f"/v1/sensors/{o.channel.id}").json().get("status") or {}

        with ThreadPoolExecutor(max_workers=len(outcomes)) as pool:
            list(pool.map(send, outcomes.values()))
    fleet = fleet_handle(settings)
    streams = ray.get([fleet.series.remote(o.channel.id, len(o.channel.test)) for o in outcomes.values()])
    for o, stream in zip(outcomes.values(), streams, strict=True):
        _adopt_stream(o, stream)


def _adopt_stream(o: SensorOutcome, stream: SensorSeries) -> None:
    """Keep what the sensor's actor scored, the sequence still open at the end and how far it judged.

    The streaming detector reports a sequence only once a nominal reading follows it, so one
    that runs to the end of the test series (common in SMAP/MSL labels) is never in an ack;
    the stream shows it with ``final=False``, and the job counts it as detected, marked open.
    The detector judges whole windows of ``threshold.batch_size`` readings, so fewer than that
    at the end stay unjudged: ``judged`` (the readings up to the last with a threshold) says
    where, so the output can say so.
    """
    o.stream = stream
    o.open_event = next(((e.start, e.end, e.score) for e in stream.events if not e.final), None)
    thresholded = np.flatnonzero(np.isfinite(stream.threshold))
    o.judged = stream.first_index + int(thresholded[-1]) + 1 if thresholded.size else 0


def _score(settings: Settings, outcomes: dict[str, SensorOutcome], out: Printer) -> dict[str, Any]:
    from pdm_ray.evaluation import score_events, total_counts

    rows, counts = [], []
    for o in outcomes.values():
        detected = o.detected
        s = o.status
        row: list[object] = [
            o.channel.id,
            o.accepted,
            s.get("scored", 0),
            len(detected),
            json.dumps([list(a) for a in o.channel.anomalies]),
            json.dumps([list(d) for d in detected]),
        ]
        if o.channel.has_labels:
            c = score_events(np.asarray(detected, dtype=np.int64).reshape(-1, 2), o.channel.anomalies)
            counts.append(c)
            row += [c.tp, c.fp, c.fn]
        else:
            row += ["-", "-", "-"]
        rows.append(row)
    out(_table(["channel", "readings", "scored", "events", "labelled", "detected", "tp", "fp", "fn"], rows))
    t = total_counts(counts)
    out(
        f"    event-level: tp={t.tp} fp={t.fp} fn={t.fn}  precision={t.precision:.3f} "
        f"recall={t.recall:.3f} F1={t.f1:.3f}"
    )
    for o in outcomes.values():
        cid, n = o.channel.id, len(o.channel.test)
        if not o.status.get("scored"):
            out(f"    note: {cid} was not scored: {o.status.get('scoring_detail')}")
            continue
        if o.open_event is not None:
            out(f"    note: {cid}: sequence {o.open_event[0]}-{o.open_event[1]} was still open at the end (counted)")
        if o.judged < n:
            out(f"    note: {cid}: readings {o.judged}-{n - 1} were not judged (the detector judges whole batches)")
    return {"tp": t.tp, "fp": t.fp, "fn": t.fn, "precision": t.precision, "recall": t.recall, "f1": t.f1}


def _report(
    settings: Settings, outcomes: dict[str, SensorOutcome], totals: dict[str, Any], started: float, out: Printer
) -> Path:
    from pdm_ray.evaluation import forecast_kpis, intervals_to_mask, roc_auc, roc_curve, score_events
    from pdm_ray.report.html import RunReport, SensorReport, render_report
    from pdm_ray.retraining.history import RetrainingHistory, history_path
    from pdm_ray.tracking.runs import connect_settings

    tracking = connect_settings(settings)
    l_s = settings.windows.l_s
    sensors, kpi_rows = [], []
    for o in outcomes.values():
        ch = o.channel
        # What the sensor actors scored during the replay: the report shows the stream, not a re-run.
        forecast, smoothed, threshold = _on_test_index(o.stream, len(ch.test))[:, l_s:]
        values = ch.test[l_s:, 0]
        scored = np.isfinite(forecast) & np.isfinite(smoothed)
        kpis = forecast_kpis(values[scored], forecast[scored]) if scored.any() else None
        kpi_dict = {"mae": kpis.mae, "rmse": kpis.rmse, "mape": kpis.mape, "r2": kpis.r2} if kpis else {}
        kpi_rows.append([ch.id, *(kpi_dict.get(k, float("nan")) for k in ("mae", "rmse", "mape", "r2"))])
        label = intervals_to_mask(ch.anomalies, len(ch.test))[l_s:]
        has_both = 0 < label[scored].sum() < scored.sum()
        counts = None
        if ch.has_labels:
            c = score_events(np.asarray(o.detected, dtype=np.int64).reshape(-1, 2), ch.anomalies)
            counts = {"tp": c.tp, "fp": c.fp, "fn": c.fn}
        sensors.append(
            SensorReport(
                sensor_id=ch.id,
                values=ch.test[:, 0],
                offset=l_s,
                forecast=forecast,
                smoothed_errors=smoothed,
                threshold=threshold,
                predicted=tuple((s, e) for s, e, _ in o.events),
                labelled=ch.anomalies,
                kpis=kpi_dict,
                counts=counts,
                still_open=None if o.open_event is None else o.open_event[:2],
                model_name=o.model_name,
                model_version=o.model_version,
                run_url=_run_url(settings, tracking.experiment_id, o.run_id),
                quality=o.quality,
                drift={
                    "severity": str(o.status.get("drift_severity") or "-"),
                    "detail": "stream window vs training reference",
                },
                roc=roc_curve(smoothed[scored], label[scored]) if has_both else None,
                roc_auc=roc_auc(smoothed[scored], label[scored]) if has_both else None,
            )
        )
    out("    forecast KPIs on the test series (one-step-ahead, production model):")
    out(_table(["channel", "MAE", "RMSE", "MAPE %", "R²"], kpi_rows))
    with RetrainingHistory(history_path(Path(settings.home))) as history:
        retraining = _run_retraining(history, list(outcomes), started)
    drift_rows = [
        [o.channel.id, o.status.get("drift_severity") or "-", o.status.get("quality") or "-"] for o in outcomes.values()
    ]
    out("    drift and quality seen by the sensor actors:")
    out(_table(["channel", "drift severity", "stream quality"], drift_rows))
    out(f"    retraining events during this run: {len(retraining)}")
    report = RunReport(
        title="pdm-ray run report",
        sensors=tuple(sensors),
        confusion=_point_confusion(outcomes, l_s),
        totals={k: totals[k] for k in ("precision", "recall", "f1", "tp", "fp", "fn")},
        retraining=retraining,
        notes=(
            "Detected bands are the events the sensor actors' streaming detectors reported during the HTTP replay.",
            "A sequence still open when the replay ended (the detector reports one only once a normal reading "
            "follows it) is counted as detected and drawn as an orange band; the last readings, fewer than "
            "threshold.batch_size, are not judged at all (every reading, in a series whose scored part is "
            "shorter than one threshold window of batch_size x window_size readings).",
            "Forecasts, smoothed errors and thresholds are the ones the sensor actors scored the replay with.",
            "Forecast KPIs are one-step-ahead on the test points the actors scored, never on training data.",
            "The point-level confusion matrix covers labelled channels only.",
        ),
    )
    path = settings.run.report or Path(settings.home) / "report.html"
    written = render_report(report, path)
    out(f"    report: {written.resolve()}")
    return written


def _point_confusion(outcomes: dict[str, SensorOutcome], l_s: int) -> dict[str, int]:
    """Point-level tp, fp, fn, tn over the scored part (from ``l_s``) of the labelled channels.

    A channel without labels has unknown ground truth, not an all-normal one, so it is left
    out, as the event-level scores leave it out.
    """
    from pdm_ray.evaluation import intervals_to_mask, point_metrics

    confusion = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for o in outcomes.values():
        ch = o.channel
        if not ch.has_labels:
            continue
        pred = intervals_to_mask(o.detected, len(ch.test))[l_s:]
        pm = point_metrics(pred, intervals_to_mask(ch.anomalies, len(ch.test))[l_s:])
        for k in confusion:
            confusion[k] += int(getattr(pm, k))
    return confusion


def _run_retraining(history: RetrainingHistory, sensors: list[str], since: float) -> tuple[dict[str, str], ...]:
    """This run's retraining decisions for its sensors, newest first.

    ``retraining.db`` under ``home`` keeps every run's and every command's decisions for every
    sensor; only those made since the job started about the sensors it replayed are this run's.
    """
    entries: list[HistoryEntry] = []
    for sensor in sensors:
        entries += [e for e in history.list(sensor, limit=50) if e.time >= since]
    return tuple(
        {
            "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.time)),
            "sensor": e.sensor,
            "trigger": e.trigger.value,
            "decision": e.decision.value,
            "outcome": e.outcome.value if e.outcome else "-",
        }
        for e in sorted(entries, key=lambda e: e.time, reverse=True)
    )


def _on_test_index(stream: Any, n: int) -> npt.NDArray[np.float32]:
    """A sensor's streamed forecast, smoothed errors and threshold as ``[3, n]`` over test indices.

    The replay starts each sensor afresh and sends test index ``i`` as reading ``i``, so the
    stream's reading index is the test index; points it no longer buffers or never scored are NaN.
    """
    out = np.full((3, n), np.nan, dtype=np.float32)
    lo = stream.first_index
    hi = min(lo + len(stream.values), n)
    if hi > lo:
        k = hi - lo
        out[:, lo:hi] = np.stack([stream.forecast[:k], stream.smoothed_errors[:k], stream.threshold[:k]])
    return out


def _run_url(settings: Settings, experiment_id: str, run_id: str) -> str:
    if not run_id:
        return ""
    uri = settings.tracking_uri
    base = uri.rstrip("/") if uri.startswith("http") else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def run_main_job(settings: Settings, options: JobOptions, out: Printer = print) -> JobResult:
    """Run every step on ``settings`` (local Ray unless ``ray.address`` is set) and return the scores.

    Raises:
        ConfigError: ``train.model`` is not in ``serve.model_kinds``, so the sensors would
            never be scored by the models this job trains.
    """
    if settings.train.model not in settings.serve.model_kinds:
        raise ConfigError(
            f"train.model {settings.train.model!r} is not in serve.model_kinds {list(settings.serve.model_kinds)}: "
            "the job would train models that the API and the sensors never use"
        )
    import ray
    from ray import serve
    from ray.serve.exceptions import RayServeException

    from actors.forecaster import SERVE_APP
    from pdm_ray.cli.common import connect_ray

    # Keep the console to the job's own tables: MLflow's notes are for its own UI.
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    started = time.time()
    start = time.perf_counter()
    step = _Steps(out)
    with step(f"load data from {settings.data.dir} and check its quality"):
        channels = load_channels(settings.data.dir, settings.data.channels)
        outcomes = {ch.id: SensorOutcome(ch) for ch in channels}
        _quality(channels, settings, outcomes, out)
    with step("start or attach to Ray"):
        own_ray = not ray.is_initialized() and not settings.ray.address
        connect_ray(settings)
        out(f"    {ray.cluster_resources().get('CPU', 0):.0f} CPUs, namespace {settings.ray.namespace}")
    deployed = False
    try:
        with step(f"tune, register and promote {settings.train.model} models (MLflow at {settings.tracking_uri})"):
            _models(channels, settings, options, outcomes, out)
        with step("deploy the Serve app and the sensor fleet"):
            _fresh_fleet(settings, channels)
            deployed = True  # from here on the app is this job's, even if deploying fails half-way
            url = _deploy(settings, out)
        with step("replay the test series through HTTP ingestion into the sensor actors"):
            _replay(url, settings, outcomes, out)
        with step("score detected against labelled anomalies"):
            totals = _score(settings, outcomes, out)
        with step("forecast KPIs, drift, retraining and the HTML report"):
            report = _report(settings, outcomes, totals, started, out)
        seconds = time.perf_counter() - start
        out(f"\nmain job finished in {seconds:.0f}s")
        if options.serve_forever:
            out(f"serving on http://{settings.serve.host}:{settings.serve.port} until Ctrl-C")
            threading.Event().wait()
    finally:
        if own_ray:
            # A local Ray started here takes the app down with it. Serve's orderly shutdown
            # would only add seconds and make Ray print a failed ServeController task.
            ray.shutdown()
        elif deployed:
            # On a cluster the app would outlive the job. Only this job's app goes: Serve and
            # any other application on the cluster are not the job's to stop.
            try:
                serve.delete(SERVE_APP)
            except RayServeException as exc:  # Serve never started: nothing to delete
                log.warning("Serve application %r not deleted: %s", SERVE_APP, exc)
    counts = {k: int(totals[k]) for k in ("tp", "fp", "fn")}
    return JobResult(report, counts, totals["precision"], totals["recall"], totals["f1"], seconds)
