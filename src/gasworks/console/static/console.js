// gasworks console: theme toggle, htmx settings, charts (uPlot) and the live run panel.
(function () {
  "use strict";
  var root = document.documentElement;

  // -- theme: prefers-color-scheme unless the person chose one (kept in localStorage;
  //    only the theme is stored there, never a key or a session)
  function applyTheme(t) { if (t) root.setAttribute("data-theme", t); else root.removeAttribute("data-theme"); }
  applyTheme(localStorage.getItem("gw-theme"));
  function currentTheme() {
    var t = root.getAttribute("data-theme");
    if (t) return t;
    return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  document.addEventListener("click", function (e) {
    var b = e.target.closest("[data-theme-toggle]");
    if (!b) return;
    var next = currentTheme() === "dark" ? "light" : "dark";
    localStorage.setItem("gw-theme", next);
    applyTheme(next);
    b.setAttribute("aria-pressed", String(next === "dark"));
    drawCharts(document);
  });

  // -- htmx: swap error answers too (the server sends them to the flash area)
  document.addEventListener("DOMContentLoaded", function () {
    if (window.htmx) {
      htmx.config.responseHandling = [
        { code: "204", swap: false },
        { code: "[23]..", swap: true },
        { code: "[45]..", swap: true, error: false }
      ];
    }
    init(document);
  });
  document.addEventListener("htmx:afterSettle", function (e) { init(e.target); });
  document.addEventListener("htmx:afterSwap", function (e) {
    if (e.detail && e.detail.target && e.detail.target.id === "flash") {
      var a = e.detail.target.querySelector("[role=alert]");
      if (a) a.focus();
    }
  });

  function init(scope) { drawCharts(scope); startStreams(scope); }

  // -- uploads: <form data-upload> sends each file in a request of its own (the REST route's
  //    limits apply per request) so each gets a progress bar, then its status, polled live.
  //    Without this script the form posts every file at once and the page reloads.
  document.addEventListener("submit", function (e) {
    var form = e.target.closest("form[data-upload]");
    if (!form || !window.FormData || !window.XMLHttpRequest) return;
    e.preventDefault();
    var input = form.querySelector("input[type=file]");
    var list = form.parentNode.querySelector("[data-upload-list]");
    var token = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"];
    Array.prototype.forEach.call(input.files, function (file) {
      var li = document.createElement("li");
      var name = document.createElement("span");
      name.textContent = file.name;
      var bar = document.createElement("progress");
      bar.max = file.size || 1; bar.value = 0;
      bar.setAttribute("aria-label", "Uploading " + file.name);
      li.appendChild(name); li.appendChild(bar);
      list.appendChild(li);
      var body = new FormData();
      body.append("files", file, file.name);
      form.querySelectorAll("select[name=collection]").forEach(function (s) { if (s.value) body.append("collection", s.value); });
      var fresh = form.querySelector("input[name=new]");
      if (fresh && fresh.checked) body.append("new", "true");
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.getAttribute("action"));
      xhr.setRequestHeader("X-CSRF-Token", token);
      xhr.setRequestHeader("HX-Request", "true");  // answers (and errors) as fragments
      xhr.upload.onprogress = function (ev) { if (ev.lengthComputable) { bar.max = ev.total; bar.value = ev.loaded; } };
      xhr.onload = function () {
        li.innerHTML = xhr.status < 300 ? xhr.responseText : "";
        if (xhr.status >= 300) {
          var err = document.createElement("div");
          err.innerHTML = xhr.responseText;  // the server's own escaped error fragment
          li.appendChild(name); li.appendChild(err);
        }
        if (window.htmx) htmx.process(li);
      };
      xhr.onerror = function () { li.textContent = file.name + ": the upload failed (network)."; };
      xhr.send(body);
    });
    form.reset();
  });

  // -- charts: <div data-chart> next to <script type="application/json"> with
  //    {"x": [epoch seconds...], "series": [{"label": "...", "values": [...]}], "unit": "$"}
  var palette = ["#2457c5", "#c62828", "#1a7f37", "#9a6700", "#8250df"];
  var charts = [];
  function drawCharts(scope) {
    if (!window.uPlot) return;
    var els = (scope.querySelectorAll ? scope : document).querySelectorAll("[data-chart]");
    charts = charts.filter(function (c) { return document.body.contains(c.root); });
    els.forEach(function (el) {
      var src = document.getElementById(el.getAttribute("data-chart"));
      if (!src) return;
      var d = JSON.parse(src.textContent);
      el.innerHTML = "";
      var dark = currentTheme() === "dark";
      var axis = { stroke: dark ? "#9aa4b2" : "#5b6470", grid: { stroke: dark ? "#2c333d" : "#e5e8ec" }, ticks: { stroke: dark ? "#2c333d" : "#d9dde3" } };
      var series = [{}].concat(d.series.map(function (s, i) {
        return { label: s.label, stroke: palette[i % palette.length], width: 2, scale: s.scale || "y",
                 fill: i === 0 ? (palette[0] + "22") : undefined, points: { show: d.x.length < 40 } };
      }));
      var axes = [axis, Object.assign({}, axis, { size: 60, scale: "y" })];
      var scales = { x: { time: d.time !== false } };
      d.series.forEach(function (s, i) {
        // a second measure on its own scale (calls beside dollars), its axis on the right
        if (s.scale && s.scale !== "y") {
          axes.push(Object.assign({}, axis, { scale: s.scale, side: 1, size: 50, grid: { show: false },
                                              stroke: palette[i % palette.length] }));
        }
      });
      var opts = {
        width: Math.max(260, el.clientWidth || 600), height: 200,
        series: series, axes: axes, scales: scales, legend: { show: true }
      };
      var data = [d.x].concat(d.series.map(function (s) { return s.values; }));
      charts.push(new uPlot(opts, data, el));
    });
  }
  window.addEventListener("resize", function () {
    charts.forEach(function (c) { var w = c.root.parentNode.clientWidth; if (w) c.setSize({ width: w, height: 200 }); });
  });

  // -- live run panel: <div data-run-events="/api/workflow-runs/ID/events?after=0">
  //    EventSource sends the session cookie (same origin); the REST SSE route serves it.
  function startStreams(scope) {
    var els = (scope.querySelectorAll ? scope : document).querySelectorAll("[data-run-events]");
    els.forEach(function (el) {
      if (el.dataset.started) return;
      el.dataset.started = "1";
      var out = el.querySelector("[data-run-output]");
      var log = el.querySelector("[data-run-log] tbody");
      var status = el.querySelector("[data-run-status]");
      var es = new EventSource(el.getAttribute("data-run-events"));
      function row(cells) {
        var tr = document.createElement("tr");
        cells.forEach(function (c, i) { var td = document.createElement("td"); td.textContent = c; if (i >= 2) td.className = "num"; tr.appendChild(td); });
        log.appendChild(tr);
      }
      function mark(nodeId, cls) {
        document.querySelectorAll('.graph [data-node="' + CSS.escape(nodeId) + '"]').forEach(function (n) {
          n.classList.remove("active"); n.classList.add(cls);
        });
      }
      es.addEventListener("run.started", function () { status.textContent = "running"; status.className = "badge running"; });
      es.addEventListener("node.started", function (e) { var d = JSON.parse(e.data); mark(d.nodeId, "active"); });
      es.addEventListener("node.finished", function (e) {
        var d = JSON.parse(e.data); mark(d.nodeId, "done");
        row([d.nodeId, d.type, d.durationMs.toFixed(1) + " ms"]);
      });
      es.addEventListener("chunk", function (e) { var d = JSON.parse(e.data); out.textContent += d.chunk || ""; });
      function end(kind) {
        return function (e) {
          var d = JSON.parse(e.data || "{}");
          status.textContent = kind; status.className = "badge " + kind;
          var sum = el.querySelector("[data-run-summary]");
          if (sum) {
            var parts = [];
            if (d.durationMs !== undefined) parts.push("duration " + Number(d.durationMs).toFixed(1) + " ms");
            if (d.tokens !== undefined) parts.push("tokens " + d.tokens);
            if (d.cost !== undefined) parts.push("cost $" + d.cost);
            if (d.error) parts.push("error " + (d.error.code || "") + ": " + (d.error.message || ""));
            sum.textContent = parts.join(" · ");
          }
          if (!out.textContent && d.output !== undefined) out.textContent = typeof d.output === "string" ? d.output : JSON.stringify(d.output, null, 2);
          es.close();
        };
      }
      es.addEventListener("run.finished", end("succeeded"));
      es.addEventListener("run.failed", end("failed"));
      es.addEventListener("run.cancelled", end("cancelled"));
      es.onerror = function () { if (es.readyState === 2) return; };
    });
  }
})();
