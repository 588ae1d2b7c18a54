/* The dashboard's charts (docs/dashboard.md): a workload's stored series
 * from /api/v1/metrics/NAME, what the page derives from them (rates,
 * error rate, latency quantiles), and uPlot drawing. Exported on
 * window.ferry; needs util.js first. */
(function () {
  "use strict";
  var F = window.ferry;
  var el = F.el, clear = F.clear, fmtBytes = F.fmtBytes, fmtNum = F.fmtNum, fmtSecs = F.fmtSecs,
    fmtPct = F.fmtPct, asMs = F.asMs, getJSON = F.getJSON, listOf = F.listOf, HOUR_MS = F.HOUR_MS;

  /* ---- metric series from /api/v1/metrics/NAME ---- */

  /* "name{k=\"v\",...}" -> {metric, labels} */
  function parseSeriesName(text) {
    var i = text.indexOf("{");
    if (i < 0) return { metric: text, labels: {} };
    var labels = {}, re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g, m;
    var body = text.slice(i + 1, text.lastIndexOf("}"));
    while ((m = re.exec(body))) labels[m[1]] = m[2].replace(/\\(.)/g, "$1");
    return { metric: text.slice(0, i), labels: labels };
  }

  /* Every series as {metric, labels, host, version, points: [[t_ms, v], ...]}. */
  function normSeries(doc) {
    var out = [];
    /* Points are buckets, stamped with their start: a counter's value is
     * its last sample in the bucket, taken near the bucket's end (or now,
     * for the bucket still filling), so a rate is computed at that time; a
     * gauge's mean stands at the bucket's middle. */
    var res = doc && doc.resolution_s ? doc.resolution_s * 1000 : 0, now = Date.now();
    listOf(doc, "series").forEach(function (s) {
      var shift = s.type === "gauge" ? res / 2 : res;
      var named = typeof s.series === "string" ? parseSeriesName(s.series) : { metric: s.metric || s.name, labels: s.labels || {} };
      var points = (s.points || []).map(function (p) {
        if (Array.isArray(p)) return [Math.min(Number(p[0]) + shift, now), p[1] === null ? null : Number(p[1])];
        return [asMs(p.t_ms || p.t), Number(p.v !== undefined ? p.v : p.value)];
      }).filter(function (p) { return p[0] && p[1] !== null && !isNaN(p[1]); });
      points.sort(function (a, b) { return a[0] - b[0]; });
      out.push({ metric: named.metric, labels: named.labels, host: s.host, version: s.version, type: s.type, points: points });
    });
    return out;
  }

  function fetchSeries(name, host, series, sinceMs) {
    var q = "?since=" + Math.floor(sinceMs) + (host ? "&host=" + encodeURIComponent(host) : "");
    if (series) q += "&series=" + encodeURIComponent(series);
    return getJSON("/api/v1/metrics/" + encodeURIComponent(name) + q).then(normSeries);
  }

  /* The union of timestamps of several series, each summed per time. */
  function sumByTime(list) {
    var m = {};
    list.forEach(function (s) { s.points.forEach(function (p) { m[p[0]] = (m[p[0]] || 0) + p[1]; }); });
    return Object.keys(m).map(Number).sort(function (a, b) { return a - b; }).map(function (t) { return [t, m[t]]; });
  }

  /* Per-second rate of a counter; a drop (a restart) starts again. */
  function rate(points) {
    var out = [];
    for (var i = 1; i < points.length; i++) {
      var dt = (points[i][0] - points[i - 1][0]) / 1000, dv = points[i][1] - points[i - 1][1];
      if (dt > 0) out.push([points[i][0], dv >= 0 ? dv / dt : null]);
    }
    return out;
  }

  /* Per time, the largest of several series (a quantile across versions). */
  function maxByTime(list) {
    var m = {};
    list.forEach(function (s) { s.points.forEach(function (p) { m[p[0]] = m[p[0]] === undefined ? p[1] : Math.max(m[p[0]], p[1]); }); });
    return Object.keys(m).map(Number).sort(function (a, b) { return a - b; }).map(function (t) { return [t, m[t]]; });
  }

  /* Quantile q of a cumulative histogram snapshot {buckets: [{le, count}], count}. */
  function histQuantile(h, q) {
    if (!h || !h.buckets || !h.buckets.length) return null;
    var total = h.count || h.buckets[h.buckets.length - 1].count;
    if (!(total > 0)) return null;
    var want = q * total, prevLe = 0, prevC = 0;
    for (var i = 0; i < h.buckets.length; i++) {
      var b = h.buckets[i];
      if (b.count >= want) {
        var span = b.count - prevC;
        return prevLe + (b.le - prevLe) * (span > 0 ? (want - prevC) / span : 1);
      }
      prevLe = b.le; prevC = b.count;
    }
    return prevLe; /* past the largest bound */
  }

  /* p50 and p99 of a workload's newest latency histogram (all protocols). */
  function latencyNow(w) {
    var ms = w && w.metrics && w.metrics.metrics;
    if (!ms) return null;
    var hs = ms.filter(function (m) { return m.name === "ferry_model_request_duration_seconds" && m.buckets; });
    if (!hs.length) return null;
    var merged = { count: 0, buckets: hs[0].buckets.map(function (b) { return { le: b.le, count: 0 }; }) };
    hs.forEach(function (h) {
      merged.count += h.count || 0;
      h.buckets.forEach(function (b, i) { if (merged.buckets[i] && merged.buckets[i].le === b.le) merged.buckets[i].count += b.count; });
    });
    return { p50: histQuantile(merged, 0.5), p99: histQuantile(merged, 0.99) };
  }

  /* The model's charts: [{title, unit, fmt, series: [{label, points}]}] */
  function modelPanels(all) {
    var of = function (metric) { return all.filter(function (s) { return s.metric === metric; }); };
    var req = of("ferry_model_requests_total");
    var total = sumByTime(req);
    var errs = sumByTime(req.filter(function (s) {
      var o = s.labels.outcome; return o === "error" || o === "unavailable";
    }));
    var rps = rate(total);
    var errRate = [];
    var rt = rate(total), re = rate(errs);
    rt.forEach(function (p) {
      var e = re.filter(function (x) { return x[0] === p[0]; })[0];
      errRate.push([p[0], p[1] > 0 ? (e ? e[1] || 0 : 0) / p[1] : p[1] === 0 ? 0 : null]);
    });
    var lat = "ferry_model_request_duration_seconds";
    var latency;
    var p50 = of(lat + ":p50"), p99 = of(lat + ":p99");
    if (p50.length || p99.length) {
      latency = { title: "latency p50 / p99", series: [
        { label: "p50", points: maxByTime(p50) }, { label: "p99", points: maxByTime(p99) }], now: "quantiles" };
    } else {
      /* The registry keeps a histogram's _sum and _count only: the mean over
       * each interval is what history allows; p50/p99 come from the newest
       * buckets (since the model server started). */
      var sum = rate(sumByTime(of(lat + "_sum"))), cnt = rate(sumByTime(of(lat + "_count")));
      var mean = [];
      sum.forEach(function (p) {
        var c = cnt.filter(function (x) { return x[0] === p[0]; })[0];
        mean.push([p[0], c && c[1] > 0 && p[1] !== null ? p[1] / c[1] : null]);
      });
      latency = { title: "latency (mean)", series: [{ label: "mean", points: mean }], now: "histogram" };
    }
    var drift = of("ferry_model_drift_psi").map(function (s) {
      return { label: s.labels.input || "input", points: s.points };
    });
    return [
      { key: "rps", title: "requests / s", fmt: function (v) { return fmtNum(v, 1); }, series: [{ label: "req/s", points: rps }] },
      { key: "latency", title: latency.title, fmt: fmtSecs, series: latency.series, now: latency.now },
      { key: "errors", title: "error rate", fmt: fmtPct, unitMax: 0.01, series: [{ label: "errors", points: errRate }] },
      { key: "drift", title: "drift (PSI) per input", fmt: function (v) { return fmtNum(v, 3); }, unitMax: 0.25, series: drift },
    ];
  }

  function appPanels(all) {
    var of = function (metric) { return all.filter(function (s) { return s.metric === metric; }); };
    return [
      { key: "mem", title: "memory", fmt: fmtBytes, series: [{ label: "RSS", points: sumByTime(of("process_resident_memory_bytes")) }] },
      { key: "cpu", title: "CPU", fmt: fmtPct, unitMax: 0.05, series: [{ label: "CPU", points: rate(sumByTime(of("process_cpu_seconds_total"))) }] },
    ];
  }

  var PALETTE = ["#0b62c4", "#c0262d", "#1a7f37", "#9a6700", "#6f42c1", "#0a7d8c", "#b35900", "#59636e"];
  var DASHES = [[], [6, 3], [2, 2], [8, 3, 2, 3]];

  /* Align several [[t, v]] lists on one x axis (seconds, as uPlot wants). */
  function align(series) {
    var ts = {};
    series.forEach(function (s) { s.points.forEach(function (p) { ts[p[0]] = true; }); });
    var xs = Object.keys(ts).map(Number).sort(function (a, b) { return a - b; });
    var data = [xs.map(function (t) { return t / 1000; })];
    series.forEach(function (s) {
      var m = {};
      s.points.forEach(function (p) { m[p[0]] = p[1]; });
      data.push(xs.map(function (t) { return m[t] === undefined ? null : m[t]; }));
    });
    return data;
  }

  function drawPanel(holder, panel, size, existing) {
    var series = panel.series.filter(function (s) { return s.points.length; });
    var last = null;
    series.forEach(function (s) {
      for (var i = s.points.length - 1; i >= 0; i--) if (s.points[i][1] !== null) { last = last === null ? s.points[i][1] : Math.max(last, s.points[i][1]); break; }
    });
    if (holder.nowEl) holder.nowEl.textContent = last === null ? "–" : panel.fmt(last);
    if (holder.nowEl && panel.now === "histogram" && panel.latencyNow)
      holder.nowEl.textContent = "p50 " + fmtSecs(panel.latencyNow.p50) + " · p99 " + fmtSecs(panel.latencyNow.p99);
    if (holder.nowEl && panel.now === "histogram") holder.nowEl.title = "p50 and p99 since the model server started, from its newest histogram";
    if (holder.nowEl && panel.now === "quantiles") {
      var lastOf = function (s) { for (var i = s.points.length - 1; i >= 0; i--) if (s.points[i][1] !== null) return s.points[i][1]; return null; };
      holder.nowEl.textContent = "p50 " + fmtSecs(lastOf(panel.series[0])) + " · p99 " + fmtSecs(lastOf(panel.series[1]));
      holder.nowEl.title = "between the model's two newest reports";
    }
    var plotBox = holder.plotBox;
    /* How many values the first line has (tests and screenshots wait on it). */
    plotBox.setAttribute("data-points", String(series.length ? series[0].points.filter(function (p) { return p[1] !== null; }).length : 0));
    if (!series.length || typeof uPlot === "undefined") {
      if (existing && existing.plot) { existing.plot.destroy(); existing.plot = null; }
      clear(plotBox).appendChild(el("div", { class: "nodata", text: typeof uPlot === "undefined" ? "charts unavailable" : "no data in the last hour" }));
      return { plot: null };
    }
    var data = align(series);
    if (existing && existing.plot && existing.n === series.length) {
      existing.plot.setData(data);
      return existing;
    }
    if (existing && existing.plot) existing.plot.destroy();
    clear(plotBox);
    var width = Math.max(120, plotBox.clientWidth || size.w);
    var few = data[0].length < 4;
    var opts = {
      width: width,
      height: size.h,
      legend: { show: size.legend },
      cursor: { show: size.legend },
      scales: {
        /* At most the last hour, from the first point (at least 2 min wide)
         * to now, so a young series is not squeezed against the edge. */
        x: { time: true, range: function (u, min) {
          var now = Date.now() / 1000, from = Math.max(now - HOUR_MS / 1000, Math.min(min, now - 120));
          return [from, now];
        } },
        y: { range: function (u, min, max) {
          var lo = Math.min(0, min === null ? 0 : min), hi = max === null ? 0 : max;
          if (!(hi > lo)) hi = lo + (panel.unitMax || 1);
          return [lo, hi + (hi - lo) * 0.08];
        } },
      },
      axes: size.legend ? [{}, { values: function (u, vals) { return vals.map(panel.fmt); }, size: 80 }]
                        : [{ show: false }, { show: false }],
      series: [{}].concat(series.map(function (s, i) {
        return { label: s.label, stroke: PALETTE[i % PALETTE.length], width: 1.5, dash: DASHES[i % DASHES.length],
                 points: { show: few, size: 5 },
                 value: function (u, v) { return v === null || v === undefined ? "–" : panel.fmt(v); }, spanGaps: true };
      })),
    };
    var plot = new uPlot(opts, data, plotBox);
    return { plot: plot, n: series.length };
  }

  F.fetchSeries = fetchSeries;
  F.modelPanels = modelPanels;
  F.appPanels = appPanels;
  F.drawPanel = drawPanel;
  F.latencyNow = latencyNow;
  F.normSeries = normSeries;
  F.rate = rate;
})();
