// pdm-ray operator dashboard: polls the JSON routes every few seconds and renders them.
// Everything the server sends is inserted as text (never as HTML).
"use strict";

(() => {
  const body = document.body;
  const ROOT = body.dataset.root || "";
  const REFRESH_MS = Math.max(1, Number(body.dataset.refresh) || 5) * 1000;
  const POINTS = Number(body.dataset.points) || 2000;
  const SLOW_EVERY = 3; // models and history change rarely: every third refresh
  const state = { ticks: 0, lastError: null, lastOk: null, selected: null, fleet: null, plotted: null };
  window.pdmDashboard = state; // for tests and curious operators

  // ------------------------------------------------------------------ helpers
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const $ = (id) => document.getElementById(id);
  // `digits` significant digits without trailing zeros: 100 -> "100", 0.1200 -> "0.12", 1.5e-7 -> "1.5e-7".
  const fmtNum = (v, digits = 3) =>
    v === null || v === undefined || Number.isNaN(v) ? "–" : String(Number(Number(v).toPrecision(digits)));
  const fmtInt = (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US"));
  function fmtTime(epochS) {
    if (epochS === null || epochS === undefined) return "–";
    const d = new Date(epochS * 1000);
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }
  function ago(epochS, nowS) {
    if (epochS === null || epochS === undefined) return "";
    const s = Math.max(0, nowS - epochS);
    if (s < 90) return `${Math.round(s)} s before last reading`;
    if (s < 5400) return `${Math.round(s / 60)} min before last reading`;
    return `${(s / 3600).toFixed(1)} h before last reading`;
  }
  const badge = (text, kind) => h("span", { class: `badge ${kind || text || "none"}` }, text ?? "–");

  // --------------------------------------------------------------------- HTTP
  function token() {
    return sessionStorage.getItem("pdm-token");
  }
  async function api(path) {
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = `Bearer ${token()}`;
    const r = await fetch(`${ROOT}${path}`, { headers, cache: "no-store" });
    if (r.status === 401) {
      askToken();
      throw new Error("this API needs a bearer token");
    }
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(`${path}: ${r.status} ${data.error || ""} ${data.detail || ""}`.trim());
    return data;
  }
  function askToken() {
    const dialog = $("token-dialog");
    if (!dialog.open) dialog.showModal();
  }
  $("token-form").addEventListener("submit", () => {
    const value = $("token-input").value.trim();
    if (value) sessionStorage.setItem("pdm-token", value);
    setTimeout(tick, 0);
  });

  // -------------------------------------------------------------------- fleet
  function renderSummary(view) {
    const sensors = view.sensors;
    $("t-sensors").textContent = sensors.length;
    $("t-scoring").textContent = sensors.filter((s) => s.status?.scoring === "scoring").length;
    $("t-critical").textContent = view.alerts.filter((a) => a.level === "critical").length;
    $("t-warning").textContent = view.alerts.filter((a) => a.level === "warning").length;
    $("t-events").textContent = sensors.reduce((n, s) => n + (s.kpis.events_last_hour || 0), 0);
    $("t-models").textContent = sensors.filter((s) => s.model).length;
  }

  function renderAlerts(view) {
    const list = $("alerts");
    $("alerts-count").textContent = view.alerts.length ? `${view.alerts.length} active` : "";
    if (!view.alerts.length) {
      list.replaceChildren(h("li", { class: "empty ok" }, "No active alerts: every sensor is within its limits."));
      return;
    }
    list.replaceChildren(
      ...view.alerts.map((a) =>
        h(
          "li",
          { class: `alert ${a.level}`, onclick: () => select(a.sensor_id) },
          h("span", { class: "level" }, a.level),
          h("a", { class: "sensor", href: `#sensor=${encodeURIComponent(a.sensor_id)}` }, a.sensor_id),
          h("span", { class: "kind" }, a.kind.replace("_", " ")),
          h("span", { class: "msg" }, a.message),
        ),
      ),
    );
  }

  function ratioCell(s, limits) {
    const r = s.kpis.rmse_ratio;
    if (r === null || r === undefined) {
      const rmse = s.kpis.rolling_rmse;
      return h("td", { class: "num muted", title: "no validation RMSE to compare with" }, rmse === null ? "–" : `RMSE ${fmtNum(rmse)}`);
    }
    const cls = r > 2 * limits.max_rmse_ratio ? "bad" : r > limits.max_rmse_ratio ? "warn" : "good";
    const title = `rolling RMSE ${fmtNum(s.kpis.rolling_rmse)} over ${s.kpis.rolling_points} readings; validation RMSE ${fmtNum(s.kpis.validation_rmse)}; alert above ${limits.max_rmse_ratio}×`;
    return h("td", { class: `num ${cls}`, title }, `${r.toFixed(2)}×`);
  }

  const scoringText = (s) => (s.status ? s.status.scoring.replace("_", " ") : "unavailable");

  function renderFleet(view) {
    const tbody = $("fleet").querySelector("tbody");
    if (!view.sensors.length) {
      tbody.replaceChildren(h("tr", {}, h("td", { colspan: 10, class: "empty" }, "No sensors yet: POST readings to /v1/sensors/{id}/readings.")));
      return;
    }
    tbody.replaceChildren(
      ...view.sensors.map((s) => {
        const st = s.status || {}; // null when the sensor's actor does not answer (s.status_error says why)
        const last = s.recent_events.length ? s.recent_events[s.recent_events.length - 1] : null;
        return h(
          "tr",
          {
            class: `row ${s.sensor_id === state.selected ? "selected" : ""}`,
            "data-sensor": s.sensor_id,
            onclick: () => select(s.sensor_id),
          },
          h("td", {}, h("span", { class: `dot ${s.state}` }), h("a", { href: `#sensor=${encodeURIComponent(s.sensor_id)}` }, s.sensor_id)),
          h("td", {}, badge(s.state)),
          h("td", { title: st.scoring_detail ?? s.status_error }, scoringText(s)),
          h("td", { class: "num" }, fmtInt(st.readings)),
          h(
            "td",
            { title: last ? `readings ${last.start}–${last.end}` : "" },
            last ? [fmtTime(last.end_time), h("span", { class: "muted" }, ` · score ${fmtNum(last.score)}`)] : h("span", { class: "muted" }, "none"),
          ),
          h("td", { class: "num" }, fmtInt(s.kpis.events_last_hour)),
          h("td", {}, badge(st.drift_severity ?? "–", `sev-${st.drift_severity ?? "none"}`)),
          h("td", { title: (st.quality_reasons || []).join("; ") }, badge(st.quality ?? "–", `q-${st.quality ?? "none"}`)),
          ratioCell(s, view.limits),
          h("td", {}, s.model ? `${s.model.name} v${s.model.version}` : h("span", { class: "muted" }, "none")),
        );
      }),
    );
  }

  // ---------------------------------------------------------------- drill-down
  function select(id) {
    if (id && location.hash !== `#sensor=${encodeURIComponent(id)}`) location.hash = `sensor=${encodeURIComponent(id)}`;
  }
  function selectedFromHash() {
    const m = /(?:^#|&)sensor=([^&]+)/.exec(location.hash);
    return m ? decodeURIComponent(m[1]) : null;
  }

  // The plot and events table show one sensor: never another's under this one's title.
  function clearSeries() {
    if (state.plotted === null) return;
    Plotly.purge("sensor-plot");
    $("sensor-events").querySelector("tbody").replaceChildren();
    state.plotted = null;
  }
  // A sensor whose actor does not answer (status null in the fleet view) has no series to fetch.
  function hasSeries(id) {
    const s = state.fleet ? state.fleet.sensors.find((x) => x.sensor_id === id) : null;
    return !s || s.status !== null;
  }

  function renderSensorHeader(id) {
    const card = $("sensor-card");
    card.hidden = !id;
    if (state.plotted !== id) clearSeries();
    if (!id) return;
    $("sensor-title").textContent = id;
    const s = state.fleet ? state.fleet.sensors.find((x) => x.sensor_id === id) : null;
    const chips = $("sensor-kpis");
    const alertsBox = $("sensor-alerts");
    if (!s) {
      chips.replaceChildren();
      alertsBox.replaceChildren();
      return;
    }
    const st = s.status || {};
    chips.replaceChildren(
      badge(s.state),
      h("span", { class: "chip", title: s.status_error }, `scoring: ${scoringText(s)}`),
      h("span", { class: "chip" }, `readings ${fmtInt(st.readings)}`),
      h("span", { class: "chip" }, `RMSE ${fmtNum(s.kpis.rolling_rmse)}` + (s.kpis.validation_rmse ? ` / val ${fmtNum(s.kpis.validation_rmse)}` : "")),
      h("span", { class: "chip" }, `drift ${st.drift_severity ?? "–"}`),
      h("span", { class: "chip" }, `quality ${st.quality ?? "–"}`),
      h("span", { class: "chip" }, s.model ? `${s.model.name} v${s.model.version}` : "no production model"),
    );
    alertsBox.replaceChildren(...s.alerts.map((a) => h("div", { class: `inline-alert ${a.level}` }, a.message)));
  }

  function renderSeries(series) {
    const x = series.timestamps.map((t) => t * 1000);
    const traces = [
      { x, y: series.values, name: "telemetry", type: "scattergl", mode: "lines", line: { color: "#58a6ff", width: 1.2 } },
      { x, y: series.forecast, name: "forecast", type: "scattergl", mode: "lines", line: { color: "#f0883e", width: 1.2 }, connectgaps: false },
      { x, y: series.smoothed_errors, name: "smoothed error", type: "scattergl", mode: "lines", xaxis: "x", yaxis: "y2", line: { color: "#a371f7", width: 1.2 } },
      { x, y: series.threshold, name: "threshold", type: "scattergl", mode: "lines", xaxis: "x", yaxis: "y2", line: { color: "#f85149", width: 1.5, dash: "dot", shape: "hv" } },
    ];
    const shapes = series.events.map((e) => ({
      type: "rect",
      xref: "x",
      yref: "paper",
      x0: e.start_time * 1000,
      x1: e.end_time * 1000,
      y0: 0,
      y1: 1,
      fillcolor: e.final ? "rgba(248,81,73,0.18)" : "rgba(240,136,62,0.15)",
      line: { color: e.final ? "rgba(248,81,73,0.7)" : "rgba(240,136,62,0.8)", width: 1, dash: e.final ? "solid" : "dash" },
      layer: "below",
    }));
    const axis = { gridcolor: "#21262d", zerolinecolor: "#30363d", linecolor: "#30363d" };
    const layout = {
      uirevision: series.sensor_id, // keep zoom across refreshes of the same sensor
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "#0d1117",
      font: { color: "#c9d1d9", family: "Inter, system-ui, sans-serif", size: 12 },
      margin: { l: 60, r: 20, t: 30, b: 40 },
      height: 460,
      showlegend: true,
      legend: { orientation: "h", x: 0, y: 1.08 },
      hovermode: "x unified",
      xaxis: { ...axis, type: "date", anchor: "y2" },
      yaxis: { ...axis, domain: [0.42, 1], title: { text: "value" } },
      yaxis2: { ...axis, domain: [0, 0.34], title: { text: "|error|, smoothed" }, rangemode: "tozero" },
      shapes,
    };
    Plotly.react("sensor-plot", traces, layout, { responsive: true, displaylogo: false });
    state.plotted = series.sensor_id;

    const tbody = $("sensor-events").querySelector("tbody");
    const events = series.events.slice().reverse();
    tbody.replaceChildren(
      ...(events.length
        ? events.map((e) =>
            h(
              "tr",
              {},
              h("td", {}, fmtTime(e.start_time)),
              h("td", {}, fmtTime(e.end_time), e.final ? null : h("span", { class: "muted" }, " (open)")),
              h("td", { class: "num" }, `${e.start}–${e.end}`),
              h("td", { class: "num" }, fmtNum(e.score)),
            ),
          )
        : [h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No anomalies in the plotted readings."))]),
    );
  }

  // ------------------------------------------------------------ models, history
  function renderModels(view) {
    const ui = view.mlflow_ui;
    const link = $("mlflow-link");
    link.href = ui.url;
    const hint = $("mlflow-hint");
    hint.hidden = !ui.hint;
    if (ui.hint) hint.replaceChildren("Links open the MLflow UI; start it with ", h("code", {}, ui.hint));
    const tbody = $("models").querySelector("tbody");
    if (!view.versions.length) {
      tbody.replaceChildren(h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No registered models yet.")));
      return;
    }
    tbody.replaceChildren(
      ...view.versions.map((v) =>
        h(
          "tr",
          {},
          h("td", {}, h("a", { href: v.model_url, target: "_blank", rel: "noopener" }, v.name)),
          h("td", {}, h("a", { href: v.url, target: "_blank", rel: "noopener", class: "ext", title: "this version in the MLflow UI" }, `v${v.version} ↗`)),
          h("td", {}, v.aliases.length ? v.aliases.map((a) => badge(a, `alias-${a}`)) : h("span", { class: "muted" }, "–")),
          h("td", {}, v.status || "–"),
          h("td", { class: "num" }, fmtNum(v.val_loss)),
        ),
      ),
    );
  }

  function evidenceText(ev) {
    return Object.entries(ev || {})
      .map(([k, v]) => `${k}=${typeof v === "number" ? fmtNum(v) : v}`)
      .join(", ");
  }
  function renderHistory(view) {
    const tbody = $("retraining").querySelector("tbody");
    if (!view.entries.length) {
      tbody.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No retraining decisions yet.")));
      return;
    }
    tbody.replaceChildren(
      ...view.entries.map((e) =>
        h(
          "tr",
          {},
          h("td", { title: fmtTime(e.time) }, fmtTime(e.time).slice(5, 16)),
          h("td", {}, h("a", { href: `#sensor=${encodeURIComponent(e.sensor)}` }, e.sensor)),
          h("td", {}, badge(e.trigger, "trigger")),
          h("td", { class: "wrap" }, e.decision.replace("_", " ")),
          h("td", {}, e.outcome ? badge(e.outcome, `out-${e.outcome}`) : h("span", { class: "muted" }, "–")),
          h("td", { class: "num" }, e.model_version ?? "–"),
          h("td", { class: "evidence", title: evidenceText(e.evidence) }, evidenceText(e.evidence)),
        ),
      ),
    );
  }

  // ---------------------------------------------------------------- the loop
  let timer = null;
  async function tick() {
    clearTimeout(timer);
    const slow = state.ticks % SLOW_EVERY === 0;
    const id = state.selected;
    const jobs = [
      api("/dashboard/api/fleet").then((v) => {
        state.fleet = v;
        renderSummary(v);
        renderAlerts(v);
        renderFleet(v);
        renderSensorHeader(state.selected);
      }),
    ];
    if (id && hasSeries(id)) jobs.push(api(`/v1/sensors/${encodeURIComponent(id)}/series?n=${POINTS}`).then((s) => id === state.selected && renderSeries(s)));
    if (slow) {
      jobs.push(api("/dashboard/api/models").then(renderModels));
      jobs.push(api("/dashboard/api/retraining").then(renderHistory));
    }
    const results = await Promise.allSettled(jobs);
    const failed = results.filter((r) => r.status === "rejected").map((r) => r.reason.message);
    const live = $("live");
    if (failed.length) {
      state.lastError = failed.join("; ");
      live.className = "live error";
      $("live-text").textContent = `error: ${failed[0]}`;
      live.title = state.lastError;
    } else {
      state.lastError = null;
      state.lastOk = new Date();
      live.className = "live ok";
      $("live-text").textContent = `live · ${state.lastOk.toLocaleTimeString("en-GB")}`;
      live.title = `refreshes every ${REFRESH_MS / 1000} s`;
    }
    state.ticks += 1;
    timer = setTimeout(tick, REFRESH_MS);
  }

  function onHash() {
    state.selected = selectedFromHash();
    for (const row of document.querySelectorAll("#fleet tr.row")) row.classList.toggle("selected", row.dataset.sensor === state.selected);
    renderSensorHeader(state.selected);
    if (state.selected) {
      if (hasSeries(state.selected)) {
        api(`/v1/sensors/${encodeURIComponent(state.selected)}/series?n=${POINTS}`)
          .then((s) => s.sensor_id === state.selected && renderSeries(s))
          .catch((err) => {
            $("sensor-alerts").replaceChildren(h("div", { class: "inline-alert critical" }, err.message));
          });
      }
      $("sensor-card").scrollIntoView({ behavior: "smooth", block: "start" });
    }
  }
  document.querySelector("#sensor-card .close").addEventListener("click", (ev) => {
    ev.preventDefault();
    history.replaceState(null, "", location.pathname + location.search);
    onHash();
  });
  window.addEventListener("hashchange", onHash);
  for (const a of document.querySelectorAll(".topbar nav a")) {
    a.addEventListener("click", (ev) => {
      ev.preventDefault(); // scroll only: the hash keeps the selected sensor
      document.querySelector(a.getAttribute("href")).scrollIntoView({ behavior: "smooth", block: "start" });
    });
  }
  state.selected = selectedFromHash();
  renderSensorHeader(state.selected);
  tick();
})();
