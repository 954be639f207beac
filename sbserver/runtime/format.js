// log()'s formatting: how Go's fmt.Sprint prints the values goja hands it, so that function
// output reads as it does upstream. Evaluated, the first time a run logs an object, to the
// function that joins log's arguments into one line.
(function () {
  function pad(n, w) { var s = String(n); while (s.length < w) s = "0" + s; return s; }
  function goDate(d) {
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1, 2) + "-" + pad(d.getUTCDate(), 2) + " " +
      pad(d.getUTCHours(), 2) + ":" + pad(d.getUTCMinutes(), 2) + ":" + pad(d.getUTCSeconds(), 2) +
      "." + pad(d.getUTCMilliseconds(), 3) + " +0000 UTC";
  }
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
  return function () {
    var args = arguments, out = "";
    for (var i = 0; i < args.length; i++) {
      if (i > 0 && typeof args[i] !== "string" && typeof args[i - 1] !== "string") out += " ";
      out += fmt(args[i]);
    }
    return out;
  };
})()
