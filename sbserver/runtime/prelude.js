// Helpers visible to user functions. Each crosses to the server through __host(name, argsJSON)
// and returns what the server answers (usually {ok, content}); "" from the host means undefined.
(function (global) {
  "use strict";
  var host = global.__host, hostLog = global.__log;
  delete global.__host;
  delete global.__log;

  function pad(n, w) { var s = String(n); while (s.length < w) s = "0" + s; return s; }
  function goDate(d) {
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1, 2) + "-" + pad(d.getUTCDate(), 2) + " " +
      pad(d.getUTCHours(), 2) + ":" + pad(d.getUTCMinutes(), 2) + ":" + pad(d.getUTCSeconds(), 2) +
      "." + pad(d.getUTCMilliseconds(), 3) + " +0000 UTC";
  }
  // The way Go's fmt.Sprint prints the values goja hands it.
  function fmt(v) {
    if (v === null || v === undefined) return "<nil>";
    if (typeof v === "string") return v;
    if (typeof v === "number" || typeof v === "boolean") return String(v);
    if (v instanceof Date) return goDate(v);
    if (Array.isArray(v)) return "[" + v.map(fmt).join(" ") + "]";
    if (typeof v === "object") {
      return "map[" + Object.keys(v).sort().map(function (k) { return k + ":" + fmt(v[k]); }).join(" ") + "]";
    }
    return String(v);
  }
  global.log = function () {
    if (arguments.length === 0) return undefined;
    var out = "";
    for (var i = 0; i < arguments.length; i++) {
      if (i > 0 && typeof arguments[i] !== "string" && typeof arguments[i - 1] !== "string") out += " ";
      out += fmt(arguments[i]);
    }
    hostLog(out);
    return undefined;
  };

  function call(name) {
    return function () {
      var args = Array.prototype.slice.call(arguments);
      var answer = host(name, JSON.stringify(args));
      return answer === "" ? undefined : JSON.parse(answer);
    };
  }
  var names = ["fetch", "sendMail", "create", "createBulk", "list", "query", "getById", "getByIds",
    "count", "update", "updateMany", "updateBulk", "incrementValue", "del", "deleteMany", "deleteBulk",
    "newId", "newID", "publish", "send", "cacheGet", "cacheSet", "inc", "dec", "search",
    "indexDocument", "deleteIndexDocument"];
  for (var i = 0; i < names.length; i++) global[names[i]] = call(names[i]);
})(globalThis);
