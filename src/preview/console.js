(function () {
  if (window.__studioConsole) return;
  window.__studioConsole = 1;
  var EP = "__STUDIO_ENDPOINT__";
  var F = window.fetch && window.fetch.bind(window);
  var MAX = 8192;
  var busy = false;
  function cut(s) { return s.length > MAX ? s.slice(0, MAX) + "…" : s; }
  function val(a) {
    try {
      if (a instanceof Error) return cut(a.stack || String(a));
      var t = typeof a;
      if (t === "string") return cut(a);
      if (t === "number" || t === "boolean" || a === null) return a;
      if (t === "undefined" || t === "function" || t === "symbol" || t === "bigint") return String(a);
      var seen = [];
      var s = JSON.stringify(a, function (k, v) {
        if (typeof v === "object" && v !== null) {
          if (seen.indexOf(v) >= 0) return "[Circular]";
          seen.push(v);
        }
        if (typeof v === "bigint") return String(v);
        return v;
      });
      return s === undefined ? String(a) : s.length > MAX ? cut(s) : JSON.parse(s);
    } catch (e) {
      try { return cut(String(a)); } catch (e2) { return "[unserializable]"; }
    }
  }
  function send(level, args, kind) {
    if (busy || !F) return;
    busy = true;
    try {
      var report = { level: level, args: args, url: String(location.href) };
      if (kind) report.kind = kind;
      var body = JSON.stringify(report);
      if (body.length > 60000) body = JSON.stringify({ level: level, args: ["[console entry of " + body.length + " bytes dropped]"], url: String(location.href) });
      F(EP, { method: "POST", headers: { "content-type": "application/json" }, body: body, keepalive: true, credentials: "same-origin" }).catch(function () {});
    } catch (e) {
    } finally {
      busy = false;
    }
  }
  ["log", "info", "warn", "error", "debug"].forEach(function (level) {
    var orig = console[level];
    console[level] = function () {
      send(level, Array.prototype.map.call(arguments, val));
      return orig.apply(console, arguments);
    };
  });
  window.addEventListener("error", function (e) {
    var where = e.filename ? " (" + e.filename + ":" + e.lineno + ":" + e.colno + ")" : "";
    var what = e.error && e.error.stack ? "Uncaught " + e.error.stack : String(e.message);
    send("error", [cut(what + where)], "uncaught");
  });
  window.addEventListener("unhandledrejection", function (e) {
    var r = e.reason;
    send("error", ["Unhandled promise rejection: " + cut(r && r.stack ? r.stack : String(JSON.stringify(val(r))))], "unhandledrejection");
  });
})();
