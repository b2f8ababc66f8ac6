// Goldfish dashboard: line charts drawn as SVG, states that update in place, a log that follows.
// No library and no network beyond this server's own /api/.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var TERMINAL = ["completed", "failed", "canceled", "timed_out", "skipped"];

  function duration(s) {
    if (s === null || s === undefined) return "—";
    if (s < 60) return s.toFixed(1) + "s";
    var whole = Math.floor(s), h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), sec = whole % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return h ? h + "h " + pad(m) + "m" : m + "m " + pad(sec) + "s";
  }

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function ticks(lo, hi, count) {
    if (hi === lo) { hi = lo + 1; lo = lo - 1; }
    var raw = (hi - lo) / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 2.5, 5, 10].map(function (f) { return f * mag; }).find(function (s) { return s >= raw; });
    var out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }

  function label(v) {
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(1);
    return +v.toPrecision(4) + "";
  }

  // series: [{label, points: [[step, value], ...]}]
  function drawChart(figure, series) {
    var old = figure.querySelector("svg, .legend");
    while (old) { old.remove(); old = figure.querySelector("svg, .legend"); }
    var width = Math.max(240, figure.clientWidth - 16), height = 200;
    var m = { l: 52, r: 12, t: 8, b: 24 };
    var xs = [], ys = [];
    series.forEach(function (s) {
      s.points.forEach(function (p, i) { xs.push(p[0] === null ? i : p[0]); ys.push(p[1]); });
    });
    var svg = el("svg", { viewBox: "0 0 " + width + " " + height, role: "img", "aria-label": "chart" });
    figure.appendChild(svg);
    if (!xs.length) return;
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
    var y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
    if (x0 === x1) { x1 = x0 + 1; }
    var pad = (y1 - y0) * 0.05 || Math.abs(y0) * 0.05 || 1;
    y0 -= pad; y1 += pad;
    var sx = function (v) { return m.l + (v - x0) / (x1 - x0) * (width - m.l - m.r); };
    var sy = function (v) { return m.t + (1 - (v - y0) / (y1 - y0)) * (height - m.t - m.b); };
    ticks(y0, y1, 4).forEach(function (v) {
      if (v < y0 || v > y1) return;
      el("line", { x1: m.l, x2: width - m.r, y1: sy(v), y2: sy(v), "class": "grid-line" }, svg);
      el("text", { x: m.l - 6, y: sy(v) + 4, "text-anchor": "end", "class": "tick" }, svg).textContent = label(v);
    });
    ticks(x0, x1, 5).forEach(function (v) {
      if (v < x0 || v > x1) return;
      el("text", { x: sx(v), y: height - 6, "text-anchor": "middle", "class": "tick" }, svg).textContent = label(v);
    });
    series.forEach(function (s, i) {
      var d = s.points.map(function (p, j) { return sx(p[0] === null ? j : p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1); });
      el("polyline", { points: d.join(" "), "class": "line series-" + (i % 4) }, svg);
    });
    if (series.length > 1) {
      var legend = document.createElement("div");
      legend.className = "legend";
      series.forEach(function (s, i) {
        var item = document.createElement("span"), mark = document.createElement("i");
        mark.className = "series-" + (i % 4);
        item.appendChild(mark);
        item.appendChild(document.createTextNode(s.label));
        legend.appendChild(item);
      });
      figure.appendChild(legend);
    }
  }

  function drawAll(root) {
    (root || document).querySelectorAll("figure.chart").forEach(function (figure) {
      drawChart(figure, JSON.parse(figure.getAttribute("data-series") || "[]"));
    });
  }

  // Every element with data-state-of="<run id>" shows that run's state.
  function applyState(id, state, elapsed) {
    document.querySelectorAll('[data-state-of="' + CSS.escape(id) + '"]').forEach(function (node) {
      var cls = node.getAttribute("class") || "";
      node.setAttribute("class", cls.replace(/\bstate-[a-z_]+/, "state-" + state));
      node.setAttribute("data-active", TERMINAL.indexOf(state) < 0 && state !== "canceled" ? "true" : "false");
      var text = node.querySelector("[data-state-text]");
      if (text) text.textContent = state.replace("_", " ");
      var time = node.querySelector("[data-elapsed]");
      if (time && elapsed !== undefined && elapsed !== null) time.textContent = duration(elapsed);
      if (node.classList.contains("pip")) node.setAttribute("title", state);
    });
  }

  function activeIds() {
    var ids = [];
    document.querySelectorAll('[data-state-of][data-active="true"]').forEach(function (node) {
      var id = node.getAttribute("data-state-of");
      if (ids.indexOf(id) < 0) ids.push(id);
    });
    return ids.slice(0, 100);
  }

  function pollStates() {
    var ids = activeIds();
    if (!ids.length) return;
    fetch("/api/states?ids=" + encodeURIComponent(ids.join(",")), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : {}; })
      .then(function (states) {
        Object.keys(states).forEach(function (id) { applyState(id, states[id].state, states[id].elapsed_seconds); });
      })
      .catch(function () { /* the next tick tries again */ })
      .then(function () { setTimeout(pollStates, 2000); });
  }

  function appendLog(log, lines) {
    var follow = document.getElementById("follow");
    var atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    lines.forEach(function (line) {
      var span = document.createElement("span"), err = line.indexOf("[stderr] ") === 0;
      span.className = err ? "err" : "out";
      var cut = line.indexOf("] ");
      span.textContent = (line.charAt(0) === "[" && cut > 0 ? line.slice(cut + 2) : line) + "\n";
      log.appendChild(span);
    });
    if (follow && follow.checked && (atEnd || lines.length)) log.scrollTop = log.scrollHeight;
  }

  function liveRun(live) {
    var run = live.getAttribute("data-run"), stage = live.getAttribute("data-stage");
    var log = document.getElementById("log"), charts = document.getElementById("charts");
    var cursor = log ? log.getAttribute("data-cursor") : "";
    // Metric counts as the page was rendered (same key order as the API: sorted by name).
    var counts = charts ? JSON.stringify(JSON.parse(charts.getAttribute("data-counts") || "{}")) : null;
    function refreshCharts() {
      fetch("/api/runs/" + encodeURIComponent(stage) + "/metrics", { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (body) {
          charts.textContent = "";
          body.metrics.forEach(function (m) {
            var figure = document.createElement("figure"), caption = document.createElement("figcaption");
            figure.className = "chart";
            var name = document.createElement("b");
            name.textContent = m.name;
            var note = document.createElement("span");
            note.className = "muted";
            note.textContent = " last " + label(m.last) + " · min " + label(m.min) + " · max " + label(m.max) + " · " + m.count + " points";
            caption.appendChild(name); caption.appendChild(note); figure.appendChild(caption);
            charts.appendChild(figure);
            var series = [{ label: m.name, points: m.series }];
            figure.setAttribute("data-series", JSON.stringify(series));
            drawChart(figure, series);
          });
        });
    }
    // When the selected stage changes state, its facts, signals, SVS and attempts are rendered again.
    var node = document.querySelector("g.dag-node.selected");
    var rendered = node && /\bstate-([a-z_]+)/.exec(node.getAttribute("class") || "");
    var status = rendered ? rendered[1] : null;
    var panels = ["run-head", "stage-facts", "inputs", "outputs", "svs", "attempts"];
    function rerenderPanels() {
      rerender(panels.map(function (id) { return document.getElementById(id); }).filter(Boolean)).catch(function () {});
    }
    function tick() {
      var query = "?cursor=" + encodeURIComponent(cursor || "") + (stage ? "&stage=" + encodeURIComponent(stage) : "");
      fetch("/api/runs/" + encodeURIComponent(run) + "/live" + query, { credentials: "same-origin" })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (d) {
          d.stages.forEach(function (s) { applyState(s.stage_run_id, s.status, s.elapsed_seconds); });
          var mine = d.stages.filter(function (s) { return s.stage_run_id === stage; })[0];
          if (mine && status !== null && mine.status !== status) rerenderPanels();
          if (mine) status = mine.status;
          applyState(d.pipeline_run_id, d.state, null);
          var total = document.getElementById("run-duration");
          if (total) total.textContent = duration(d.duration_seconds);
          if (d.logs && log) { appendLog(log, d.logs.lines); cursor = d.logs.cursor; }
          var seen = JSON.stringify(d.metric_counts);
          if (charts && seen !== counts) refreshCharts();
          counts = seen;
          if (d.active || (d.logs && !d.logs.complete)) setTimeout(tick, 1000);
        })
        .catch(function () { setTimeout(tick, 3000); });
    }
    if (log) log.scrollTop = log.scrollHeight;
    var complete = log && log.getAttribute("data-complete") === "true";
    if (live.getAttribute("data-active") === "true" || (log && !complete)) setTimeout(tick, 1000);
  }

  // Sections marked data-refresh are re-rendered by the server every few seconds: new runs appear,
  // finished ones leave, without reloading the page (ticked checkboxes stay ticked).
  function rerender(regions) {
    return fetch(location.href, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var ticked = Array.prototype.map.call(document.querySelectorAll("input.pick:checked"), function (i) { return i.value; });
        regions.forEach(function (region) {
          var next = fresh.getElementById(region.id);
          if (next) region.innerHTML = next.innerHTML;
        });
        document.querySelectorAll("input.pick").forEach(function (i) { i.checked = ticked.indexOf(i.value) >= 0; });
        regions.forEach(function (region) { drawAll(region); });
      });
  }

  function refreshRegions() {
    var regions = document.querySelectorAll("[data-refresh]");
    if (!regions.length) return;
    rerender(Array.prototype.slice.call(regions))
      .catch(function () { /* the next tick tries again */ })
      .then(function () { setTimeout(refreshRegions, 4000); });
  }

  function comparePicker() {
    var button = document.getElementById("compare-picked");
    if (!button) return;
    var picked = function () {
      return Array.prototype.map.call(document.querySelectorAll("input.pick:checked"), function (i) { return i.value; });
    };
    document.addEventListener("change", function (event) {
      if (!event.target.classList.contains("pick")) return;
      var n = picked().length;
      button.disabled = n < 2 || n > 4;
      button.textContent = n ? "Compare " + n + " runs" : "Compare selected";
    });
    // The table lists newest first; the oldest picked run becomes the baseline (a), so diffs read old → new.
    button.addEventListener("click", function () { location.href = "/compare?runs=" + picked().reverse().join(","); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawAll();
    var resize;
    window.addEventListener("resize", function () { clearTimeout(resize); resize = setTimeout(function () { drawAll(); }, 150); });
    comparePicker();
    var live = document.getElementById("live");
    if (live) liveRun(live); else { setTimeout(pollStates, 2000); setTimeout(refreshRegions, 4000); }
  });
})();
