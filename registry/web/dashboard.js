/* The ferry dashboard (docs/dashboard.md). Plain scripts, no build step:
 * util.js (DOM, formats, states, the API), charts.js (series and uPlot
 * charts), and this file: it reads the registry's read-only JSON API
 * (/api/v1, docs/api.md), renders the overview and the detail view, waits
 * on /api/v1/stream for changes and falls back to polling when the stream
 * fails. Every request goes to the page's own origin. */
(function () {
  "use strict";

  var HOUR_MS = 3600 * 1000;
  var POLL_MS = 2000;          /* fallback polling period */
  var STREAM_RETRY_MS = 15000; /* how long to poll before trying the stream again */
  var CHART_MS = 10000;        /* charts redraw on their own clock */

  var F = window.ferry;
  var el = F.el, clear = F.clear, $ = F.$, fmtBytes = F.fmtBytes, fmtNum = F.fmtNum, fmtPct = F.fmtPct,
    fmtTime = F.fmtTime, fmtAgo = F.fmtAgo, asMs = F.asMs, labelsOf = F.labelsOf,
    stateBadge = F.stateBadge, getJSON = F.getJSON, listOf = F.listOf;
  var fetchSeries = F.fetchSeries, modelPanels = F.modelPanels, appPanels = F.appPanels,
    drawPanel = F.drawPanel, latencyNow = F.latencyNow;

  /* One host as the page uses it. */
  function normHost(h) {
    var plugins = (h.plugins || []).map(function (p) {
      if (typeof p === "string") return p;
      var rts = p.runtimes && p.runtimes.length ? " (" + p.runtimes.join(", ") + ")" : "";
      return (p.name || "?") + rts;
    });
    var mem = h.agent_rss_bytes;
    if (mem === undefined && h.agent) mem = h.agent.rss_bytes;
    if (mem === undefined) mem = h.rss_bytes;
    return {
      name: h.name,
      online: !!h.online,
      pending: h.status === "pending",
      labels: labelsOf(h.labels),
      plugins: plugins,
      agent_rss: mem,
      last_seen_ms: asMs(h.last_seen_ms || h.last_seen),
      workloads: Array.isArray(h.workloads) ? h.workloads : null,
      states: h.states || {},
    };
  }

  function metricValue(w, name) {
    /* the newest metrics of a workload: {collected_ms, metrics: [{name, type, labels, value}]} */
    var m = w.metrics;
    if (m && !Array.isArray(m) && Array.isArray(m.metrics)) m = m.metrics;
    if (!m) return undefined;
    if (Array.isArray(m)) {
      var sum, found = false;
      m.forEach(function (x) {
        if (x.name === name && typeof x.value === "number") { sum = (sum || 0) + x.value; found = true; }
      });
      return found ? sum : undefined;
    }
    var v = m[name];
    if (v && typeof v === "object") return v.value;
    return v;
  }

  function normWorkload(w, hostName) {
    return {
      host: w.host || hostName,
      name: w.name,
      kind: w.kind || "app",
      version: w.version,
      state: w.state,
      reason: w.reason || "",
      restarts: w.restarts || 0,
      since_ms: asMs(w.since_ms || w.since),
      address: w.port > 0 ? "http://" + (w.address ? (w.address.indexOf(":") >= 0 ? "[" + w.address + "]" : w.address) : "127.0.0.1") + ":" + w.port
                          : (/^https?:/.test(w.address || "") ? w.address : ""),
      mode: w.mode || "",
      rss: w.rss_bytes !== undefined && w.rss_bytes !== 0 ? w.rss_bytes : metricValue(w, "process_resident_memory_bytes"),
      cpu: metricValue(w, "process_cpu_seconds_total"),
      metrics: w.metrics,
      runs: w.runs || w.last_runs || null,
    };
  }

  function normEvent(e) {
    var c = e.change || e;
    return {
      id: e.seq !== undefined ? e.seq : e.id,
      time_ms: asMs(e.time_ms || e.since_ms || c.since_ms || e.time),
      host: e.host,
      name: c.name,
      version: c.version,
      state: c.state,
      reason: c.reason || "",
    };
  }

  /* ---- state ---- */

  var model = { hosts: [], workloads: [], events: [], eventsNext: 0, cpuPrev: {} };
  var route = { name: null };

  function loadAll() {
    return Promise.all([
      getJSON("/api/v1/hosts"),
      getJSON("/api/v1/workloads"),
      loadEvents(),
    ]).then(function (r) {
      var hosts = listOf(r[0], "hosts").map(normHost);
      var wls = listOf(r[1], "workloads").map(function (w) { return normWorkload(w); });
      if (!wls.length)
        hosts.forEach(function (h) {
          (h.workloads || []).forEach(function (w) { wls.push(normWorkload(w, h.name)); });
        });
      model.hosts = hosts;
      model.workloads = wls;

      $("error-banner").hidden = true;
      render();
    }).catch(function (e) {
      showError("The registry's API did not answer: " + e.message);
      throw e;
    });
  }

  /* Events come in order of their seq: fetch what is newer than the last
   * one seen (all of them, a page at a time, the first time), keep 500. */
  function loadEvents() {
    var page = function (n) {
      return getJSON("/api/v1/events?since=" + model.eventsNext + "&limit=1000").then(function (doc) {
        var evs = listOf(doc, "events").map(normEvent);
        model.events = model.events.concat(evs).slice(-500);
        if (doc && typeof doc.next === "number") model.eventsNext = doc.next;
        if (evs.length === 1000 && n < 20) return page(n + 1);
      });
    };
    return page(0).catch(function () { return null; });
  }

  function showError(msg) {
    var b = $("error-banner");
    b.textContent = msg;
    b.hidden = false;
  }

  /* ---- rendering: the overview ---- */

  function fillTable(id, rows, cols, emptyText) {
    var tb = clear($(id).tBodies[0]);
    if (!rows.length) {
      tb.appendChild(el("tr", { class: "empty" }, [el("td", { colspan: String(cols), text: emptyText })]));
      return;
    }
    rows.forEach(function (r) { tb.appendChild(r); });
  }

  function workloadLink(w) {
    return el("a", { href: "#/w/" + encodeURIComponent(w.name), "data-workload": w.name, text: w.name });
  }

  function cpuRate(w) {
    /* CPU seconds per second between two looks at the counter */
    if (w.cpu === undefined) return undefined;
    var key = w.host + "/" + w.name + "/" + w.version;
    var now = Date.now(), prev = model.cpuPrev[key];
    model.cpuPrev[key] = { v: w.cpu, t: now, rate: prev ? prev.rate : undefined };
    if (prev && now - prev.t > 500 && w.cpu >= prev.v && w.cpu !== prev.v)
      model.cpuPrev[key].rate = (w.cpu - prev.v) / ((now - prev.t) / 1000);
    return model.cpuPrev[key].rate;
  }

  function renderHosts() {
    var rows = model.hosts.map(function (h) {
      var n = model.workloads.filter(function (w) { return w.host === h.name; }).length;
      var status = h.pending ? "pending" : h.online ? "online" : "offline";
      return el("tr", { "data-host": h.name }, [
        el("td", {}, [el("strong", { text: h.name })]),
        el("td", {}, [stateBadge(status)]),
        el("td", {}, h.labels.map(function (l) { return el("span", { class: "chip", text: l }); })),
        el("td", {}, h.plugins.map(function (p) { return el("span", { class: "chip", text: p }); })),
        el("td", { class: "num", text: fmtBytes(h.agent_rss) }),
        el("td", { class: "num", text: String(n) }),
        el("td", { text: fmtAgo(h.last_seen_ms), title: fmtTime(h.last_seen_ms) }),
      ]);
    });
    $("hosts-count").textContent = "(" + model.hosts.filter(function (h) { return h.online; }).length +
      " of " + model.hosts.length + " online)";
    fillTable("hosts", rows, 7, "No host has enrolled yet.");
  }

  function byKind(kinds) {
    return model.workloads.filter(function (w) { return kinds.indexOf(w.kind) >= 0; })
      .sort(function (a, b) { return (a.name + a.host).localeCompare(b.name + b.host); });
  }

  function renderApps() {
    var apps = byKind(["app", "service", ""]);
    var rows = apps.map(function (w) {
      var cpu = cpuRate(w);
      return el("tr", { "data-workload": w.name, "data-host": w.host }, [
        el("td", {}, [workloadLink(w)]),
        el("td", { text: w.host }),
        el("td", { class: "version", text: w.version }),
        el("td", {}, [stateBadge(w.state, w.reason)]),
        el("td", { class: "num", text: String(w.restarts) }),
        el("td", { class: "num", text: fmtBytes(w.rss) }),
        el("td", { class: "num", text: cpu === undefined ? (w.cpu === undefined ? "–" : fmtNum(w.cpu, 1) + " s total") : fmtPct(cpu) }),
        el("td", {}, w.address ? [el("code", { text: w.address })] : ["–"]),
      ]);
    });
    $("apps-count").textContent = "(" + apps.length + ")";
    fillTable("apps", rows, 8, "No app is deployed.");
  }

  function renderRuns() {
    var runs = byKind(["notebook", "job"]).concat(model.workloads.filter(function (w) {
      return w.kind === "app" && w.mode === "job";
    }));
    var rows = runs.map(function (w) {
      var last = (w.runs || []).slice(-5).map(function (r) {
        return el("div", {}, [stateBadge(r.state || r.outcome || "unknown"), " ", el("span", { class: "reason", text: fmtTime(asMs(r.finished_ms || r.started_ms || r.time_ms)) })]);
      });
      if (!last.length) {
        /* no run list: the events of this workload stand in for it */
        last = model.events.filter(function (e) {
          return e.name === w.name && (e.state === "succeeded" || e.state === "failed");
        }).slice(-3).map(function (e) {
          return el("div", {}, [stateBadge(e.state), " ", el("span", { class: "reason", text: fmtTime(e.time_ms) })]);
        });
      }
      return el("tr", { "data-workload": w.name, "data-host": w.host }, [
        el("td", {}, [workloadLink(w)]),
        el("td", { text: w.mode === "job" ? "job" : w.kind }),
        el("td", { text: w.host }),
        el("td", { class: "version", text: w.version }),
        el("td", {}, [stateBadge(w.state, w.reason)]),
        el("td", {}, last.length ? last : ["–"]),
      ]);
    });
    $("runs-count").textContent = "(" + runs.length + ")";
    fillTable("runs", rows, 6, "No notebook or job is deployed.");
  }

  function eventItem(e) {
    return el("li", { "data-workload": e.name || "" }, [
      el("span", { class: "when", text: fmtAgo(e.time_ms), title: fmtTime(e.time_ms) }),
      el("span", { class: "what" }, [
        el("strong", { text: e.name || "?" }), "@" + (e.version || "?") + " on " + (e.host || "?") + " ",
      ]),
      stateBadge(e.state, e.reason),
    ]);
  }

  function renderEvents(id, events) {
    var ol = clear($(id));
    var list = events.slice().sort(function (a, b) { return b.time_ms - a.time_ms; }).slice(0, 40);
    if (!list.length) ol.appendChild(el("li", { class: "empty", text: "No events yet." }));
    list.forEach(function (e) { ol.appendChild(eventItem(e)); });
  }

  /* ---- models: cards with small charts ---- */

  var modelCards = {}; /* key host/name -> {card, charts} */

  function renderModels() {
    var models = byKind(["model"]);
    var box = $("models");
    var keep = {};
    models.forEach(function (w) {
      var key = w.host + "/" + w.name;
      keep[key] = true;
      var c = modelCards[key];
      if (!c) {
        c = { minis: el("div", { class: "minis" }), head: el("div", { class: "card-head" }), charts: {} };
        c.card = el("article", { class: "card", "data-workload": w.name, "data-host": w.host }, [c.head, c.minis]);
        modelCards[key] = c;
        box.appendChild(c.card);
        c.fresh = true;
      }
      clear(c.head);
      c.head.appendChild(el("span", { class: "name" }, [workloadLink(w)]));
      c.head.appendChild(el("span", { class: "version", text: w.version }));
      c.head.appendChild(stateBadge(w.state, w.reason));
      c.head.appendChild(el("span", { class: "meta", text: "on " + w.host + (w.address ? " · " + w.address : "") }));
      c.w = w;
    });
    Object.keys(modelCards).forEach(function (k) {
      if (!keep[k]) {
        destroyCharts(modelCards[k].charts);
        box.removeChild(modelCards[k].card);
        delete modelCards[k];
      }
    });
    if (!models.length && !box.querySelector(".nodata"))
      box.appendChild(el("p", { class: "nodata", text: "No model is deployed." }));
    if (models.length) { var nd = box.querySelector(":scope > .nodata"); if (nd) box.removeChild(nd); }
    $("models-count").textContent = "(" + models.length + ")";
    Object.keys(modelCards).forEach(function (k) {
      if (modelCards[k].fresh) { modelCards[k].fresh = false; drawModelCard(modelCards[k]); }
    });
  }

  function destroyCharts(charts) {
    Object.keys(charts).forEach(function (k) { if (charts[k].plot) charts[k].plot.destroy(); });
  }

  function drawModelCard(c) {
    var w = c.w;
    var since = Date.now() - HOUR_MS;
    return fetchSeries(w.name, w.host, null, since).then(function (all) {
      var panels = w.kind === "model" ? modelPanels(all) : appPanels(all);
      panels.forEach(function (p) {
        p.latencyNow = latencyNow(c.w);
        var h = c.charts[p.key];
        if (!h) {
          h = { nowEl: el("span", { class: "now", text: "–" }), plotBox: el("div", { class: "plot" }) };
          c.minis.appendChild(el("div", { class: "mini", "data-chart": p.key }, [
            el("div", { class: "label" }, [el("span", { text: p.title }), h.nowEl]), h.plotBox]));
          c.charts[p.key] = h;
        }
        var r = drawPanel(h, p, { w: 260, h: 70, legend: false }, h);
        h.plot = r.plot; h.n = r.n;
      });
    }).catch(function (e) {
      if (!c.minis.querySelector(".nodata"))
        c.minis.appendChild(el("div", { class: "nodata", text: "metrics unavailable: " + e.message }));
    });
  }

  function redrawCharts() {
    Object.keys(modelCards).forEach(function (k) { drawModelCard(modelCards[k]); });
    if (route.name) drawDetailCharts();
  }

  /* ---- the detail view ---- */

  var detail = { charts: {}, name: null };

  function renderDetail() {
    var name = route.name;
    var inst = model.workloads.filter(function (w) { return w.name === name; });
    $("detail-title").textContent = name;
    var box = clear($("detail-instances"));
    var wrap = el("div", { class: "instances" });
    inst.forEach(function (w) {
      wrap.appendChild(el("div", { class: "instance", "data-host": w.host }, [
        el("strong", { text: w.host }), " ", el("span", { class: "version", text: w.version }), " ",
        stateBadge(w.state, w.reason),
        el("div", { class: "reason", text: w.kind + (w.address ? " · " + w.address : "") + " · restarts " + w.restarts +
          " · memory " + fmtBytes(w.rss) + " · since " + fmtTime(w.since_ms) }),
      ]));
    });
    if (!inst.length) wrap.appendChild(el("p", { class: "note", text: name + " runs on no host now." }));
    box.appendChild(wrap);
    renderEvents("detail-events", model.events.filter(function (e) { return e.name === name; }));
  }

  function loadDetailStatic(name) {
    getJSON("/api/v1/artifacts/" + encodeURIComponent(name)).then(function (doc) {
      var vs = listOf(doc, "versions");
      var rows = vs.slice().reverse().map(function (v) {
        return el("tr", {}, [
          el("td", { class: "version", text: v.version }),
          el("td", { text: v.kind || doc.kind || "–" }),
          el("td", { text: fmtTime(asMs(v.published_ms || v.published_unix * 1000 || v.published)) }),
          el("td", { text: v.publisher || v.signer || "–" }),
        ]);
      });
      fillTable("detail-versions", rows, 4, "No version is published.");
    }).catch(function (e) { fillTable("detail-versions", [], 4, "Versions unavailable: " + e.message); });
    getJSON("/api/v1/deployments").then(function (doc) {
      var ds = listOf(doc, "deployments").filter(function (d) { return d.name === name; });
      var rows = ds.map(function (d) {
        return el("tr", {}, [
          el("td", {}, [el("code", { text: d.selector || d.to || "(every host)" })]),
          el("td", { class: "version", text: d.version || (d.undeploy ? "(undeployed)" : "–") }),
          el("td", { text: fmtTime(asMs(d.issued_ms || d.issued)) }),
          el("td", { text: d.deployer || d.signer || d.key_id || d.by || "–" }),
        ]);
      });
      fillTable("detail-deploys", rows, 4, "No deployment of " + name + ".");
    }).catch(function (e) { fillTable("detail-deploys", [], 4, "Deployments unavailable: " + e.message); });
    loadLogs(name);
  }

  function logsHowTo(name, why) {
    var box = clear($("detail-logs"));
    box.appendChild(el("div", { class: "note" }, [
      why ? why + " " : "",
      "Read its log with the CLI, which signs the logs action with your key: ",
      el("code", { text: "ferry logs " + name + " --tail 100" }),
      ". (docs/dashboard.md, \"Log tail\", says how a registry can show it here.)",
    ]));
  }

  /* The log tail of the first host running name: stdout and stderr, read
   * by the registry through the logs action (--http-logs-key); without it
   * the registry answers 404 and the section says how to read them. */
  function loadLogs(name) {
    var w = model.workloads.filter(function (x) { return x.name === name; })[0];
    if (!w) { logsHowTo(name, name + " runs on no host now."); return; }
    var base = "/api/v1/logs/" + encodeURIComponent(name) + "?host=" + encodeURIComponent(w.host) + "&lines=100&stream=";
    Promise.all(["stdout", "stderr"].map(function (st) {
      return getJSON(base + st, 20000).then(function (d) { return { ok: d }; }, function (e) { return { err: e }; });
    })).then(function (r) {
      if (route.name !== name) return;
      var errs = r.filter(function (x) { return x.err; });
      if (errs.length === 2) {
        var e = errs[0].err;
        logsHowTo(name, /--http-logs-key/.test(e.message) ? "This registry does not read logs for the page." : "The log tail failed: " + e.message + ".");
        return;
      }
      var box = clear($("detail-logs"));
      ["stdout", "stderr"].forEach(function (st, i) {
        var x = r[i];
        box.appendChild(el("h4", { text: st + " on " + w.host + (x.ok && x.ok.truncated ? " (older lines skipped)" : "") }));
        if (x.err) box.appendChild(el("p", { class: "note", text: "failed: " + x.err.message }));
        else box.appendChild(el("pre", { class: "logs", "data-stream": st, text: x.ok.text || "(empty)" }));
      });
      box.appendChild(el("p", { class: "reason", text: "the last 100 lines, newest last; ferry logs " + name + " --follow streams them" }));
    });
  }

  function drawDetailCharts() {
    var name = route.name;
    var inst = model.workloads.filter(function (w) { return w.name === name; });
    var box = $("detail-charts");
    if (!inst.length) {
      clear(box).appendChild(el("p", { class: "nodata", text: "no running instance" }));
      detail.charts = {};
      return;
    }
    var w = inst[0];
    fetchSeries(name, null, null, Date.now() - HOUR_MS).then(function (all) {
      if (route.name !== name) return;
      var panels = (w.kind === "model" ? modelPanels(all) : []).concat(appPanels(all));
      panels.forEach(function (p) {
        p.latencyNow = latencyNow(w);
        var h = detail.charts[p.key];
        if (!h) {
          h = { nowEl: el("span", { class: "now", text: "–" }), plotBox: el("div", { class: "plot-large" }) };
          box.appendChild(el("div", { class: "chart", "data-chart": p.key }, [
            el("h4", {}, [p.title + " · now ", h.nowEl]), h.plotBox]));
          detail.charts[p.key] = h;
        }
        var r = drawPanel(h, p, { w: 560, h: 180, legend: true }, h);
        h.plot = r.plot; h.n = r.n;
      });
    }).catch(function (e) {
      clear(box).appendChild(el("p", { class: "nodata", text: "metrics unavailable: " + e.message }));
      detail.charts = {};
    });
  }

  /* ---- routing ---- */

  function parseRoute() {
    var m = /^#\/w\/(.+)$/.exec(location.hash || "");
    var name = m ? decodeURIComponent(m[1]) : null;
    var changed = name !== route.name;
    route.name = name;
    $("overview").hidden = !!name;
    $("detail").hidden = !name;
    if (changed) {
      destroyCharts(detail.charts);
      detail.charts = {};
      clear($("detail-charts"));
      if (name) {
        renderDetail();
        loadDetailStatic(name);
        drawDetailCharts();
      }
    }
  }

  function render() {
    var online = model.hosts.filter(function (h) { return h.online; }).length;
    $("registry-summary").textContent = online + "/" + model.hosts.length + " hosts online · " +
      model.workloads.length + " workloads";
    renderHosts();
    renderApps();
    renderModels();
    renderRuns();
    renderEvents("events", model.events);
    if (route.name) renderDetail();
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.setAttribute("data-updated", String(Date.now()));
  }

  /* ---- live updates: the long-poll stream, polling as the fallback ---- */

  function setMode(mode) {
    var live = $("live");
    if (live.getAttribute("data-mode") === mode) return;
    live.setAttribute("data-mode", mode);
    var icon = { live: "●", polling: "◍", offline: "○", connecting: "◌" }[mode];
    live.querySelector(".live-icon").textContent = icon;
    live.querySelector(".live-text").textContent = {
      live: "live", polling: "polling every " + POLL_MS / 1000 + " s", offline: "registry unreachable", connecting: "connecting",
    }[mode];
  }

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  function pollFor(ms) {
    var end = Date.now() + ms;
    var step = function () {
      return loadAll().then(function () { setMode("polling"); }, function () { setMode("offline"); })
        .then(function () { return Date.now() < end ? sleep(POLL_MS).then(step) : null; });
    };
    return step();
  }

  function streamLoop(since) {
    var url = since === null ? "/api/v1/stream" : "/api/v1/stream?since=" + since + "&timeout=25";
    return getJSON(url, 35000).then(function (r) {
      if (!r || typeof r.seq !== "number") throw new Error("the stream sent no seq");
      var changed = since === null || r.seq !== since;
      var next = changed ? loadAll().then(function () { setMode("live"); }) : Promise.resolve(setMode("live"));
      return next.then(function () { return streamLoop(r.seq); });
    }).catch(function () {
      /* The stream dropped (or is not there): poll for a while, then try it again. */
      return pollFor(STREAM_RETRY_MS).then(function () { return streamLoop(null); });
    });
  }

  window.addEventListener("hashchange", parseRoute);
  window.addEventListener("resize", function () {
    var all = [];
    Object.keys(modelCards).forEach(function (k) { Object.keys(modelCards[k].charts).forEach(function (c) { all.push(modelCards[k].charts[c]); }); });
    Object.keys(detail.charts).forEach(function (c) { all.push(detail.charts[c]); });
    all.forEach(function (h) { if (h.plot) h.plot.setSize({ width: Math.max(120, h.plotBox.clientWidth), height: h.plot.height }); });
  });
  parseRoute();
  streamLoop(null);
  setInterval(function () {
    redrawCharts();
    /* Memory, CPU and last-seen move without a state change: refresh the
     * tables on the charts' clock too (polling mode does so already). */
    if ($("live").getAttribute("data-mode") === "live") loadAll().catch(function () {});
  }, CHART_MS);
  setInterval(function () { if (document.querySelector("#hosts")) renderHosts(); }, 10000);
})();
