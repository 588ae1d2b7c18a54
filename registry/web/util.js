/* The dashboard's shared pieces (docs/dashboard.md): DOM helpers, number
 * and time formats, state badges (a symbol and the word: never colour
 * alone) and the JSON API's fetch. Exported on window.ferry. */
(function () {
  "use strict";
  var F = window.ferry = window.ferry || {};
  F.HOUR_MS = 3600 * 1000;

  /* ---- small helpers ---- */

  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    if (attrs)
      Object.keys(attrs).forEach(function (k) {
        if (k === "text") e.textContent = attrs[k];
        else if (k === "class") e.className = attrs[k];
        else e.setAttribute(k, attrs[k]);
      });
    (kids || []).forEach(function (k) {
      if (k === null || k === undefined) return;
      e.appendChild(typeof k === "string" ? document.createTextNode(k) : k);
    });
    return e;
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); return e; }
  function $(id) { return document.getElementById(id); }

  function fmtBytes(n) {
    if (n === null || n === undefined || isNaN(n)) return "–";
    var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    n = Number(n);
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(Math.round(n))) + " " + u[i];
  }
  function fmtNum(v, digits) {
    if (v === null || v === undefined || isNaN(v)) return "–";
    var a = Math.abs(v);
    if (a !== 0 && a < 0.01) return v.toExponential(1);
    return Number(v).toFixed(digits === undefined ? 2 : digits);
  }
  function fmtSecs(v) {
    if (v === null || v === undefined || isNaN(v)) return "–";
    if (v < 1e-3) return (v * 1e6).toFixed(0) + " µs";
    if (v < 1) return (v * 1e3).toFixed(1) + " ms";
    return v.toFixed(2) + " s";
  }
  function fmtPct(v) { return v === null || v === undefined || isNaN(v) ? "–" : (v * 100).toFixed(1) + " %"; }
  function fmtTime(ms) {
    if (!ms) return "–";
    var d = new Date(Number(ms));
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }
  function fmtAgo(ms) {
    if (!ms) return "–";
    var s = Math.max(0, Math.round((Date.now() - Number(ms)) / 1000));
    if (s < 90) return s + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }
  function asMs(v) {
    /* times come as unix ms or as ISO strings */
    if (v === null || v === undefined || v === "") return 0;
    if (typeof v === "number") return v;
    var t = Date.parse(v);
    return isNaN(t) ? 0 : t;
  }
  function labelsOf(v) {
    /* {"k": "v"} or ["k=v"] or "k=v,k=v" */
    if (!v) return [];
    if (Array.isArray(v)) return v.map(String);
    if (typeof v === "string") return v ? v.split(",") : [];
    return Object.keys(v).sort().map(function (k) { return k + "=" + v[k]; });
  }

  /* ---- states: a symbol and the word, colour only on top ---- */

  var STATES = {
    running:     { sym: "●", cls: "ok" },
    succeeded:   { sym: "✔", cls: "ok" },
    online:      { sym: "●", cls: "ok" },
    pending:     { sym: "…", cls: "busy" },
    fetching:    { sym: "↓", cls: "busy" },
    verifying:   { sym: "…", cls: "busy" },
    starting:    { sym: "◐", cls: "busy" },
    scheduled:   { sym: "◷", cls: "idle" },
    stopped:     { sym: "■", cls: "idle" },
    offline:     { sym: "○", cls: "bad" },
    unhealthy:   { sym: "▲", cls: "warn" },
    warning:     { sym: "▲", cls: "warn" },
    rolled_back: { sym: "↺", cls: "bad" },
    failed:      { sym: "✖", cls: "bad" },
  };
  function stateBadge(state, reason) {
    var s = STATES[state] || { sym: "?", cls: "idle" };
    var word = state || "unknown";
    var warn = reason && /^warning:/.test(reason);
    if (warn && s.cls === "ok") s = { sym: "▲", cls: "warn" };
    var b = el("span", { class: "state " + s.cls, "data-state": word, title: reason || word }, [
      el("span", { class: "sym", "aria-hidden": "true", text: s.sym }),
      " " + word.replace("_", " "),
    ]);
    if (reason && reason !== "healthy" && reason !== word)
      b.appendChild(el("span", { class: "reason", text: reason }));
    return b;
  }

  /* ---- the API ---- */

  function getJSON(path, timeoutMs) {
    var ctl = typeof AbortController !== "undefined" ? new AbortController() : null;
    var timer = ctl ? setTimeout(function () { ctl.abort(); }, timeoutMs || 10000) : null;
    return fetch(path, { cache: "no-store", signal: ctl ? ctl.signal : undefined, credentials: "same-origin" })
      .then(function (r) {
        return r.text().then(function (t) {
          var body = null;
          try { body = t ? JSON.parse(t) : null; } catch (e) { body = null; }
          if (!r.ok) {
            var err = new Error((body && body.error) || ("HTTP " + r.status));
            err.status = r.status;
            throw err;
          }
          return body;
        });
      })
      .finally(function () { if (timer) clearTimeout(timer); });
  }
  function listOf(doc, key) {
    if (!doc) return [];
    if (Array.isArray(doc)) return doc;
    if (Array.isArray(doc[key])) return doc[key];
    return [];
  }

  F["el"] = el;
  F["clear"] = clear;
  F["$"] = $;
  F["fmtBytes"] = fmtBytes;
  F["fmtNum"] = fmtNum;
  F["fmtSecs"] = fmtSecs;
  F["fmtPct"] = fmtPct;
  F["fmtTime"] = fmtTime;
  F["fmtAgo"] = fmtAgo;
  F["asMs"] = asMs;
  F["labelsOf"] = labelsOf;
  F["stateBadge"] = stateBadge;
  F["getJSON"] = getJSON;
  F["listOf"] = listOf;
})();
