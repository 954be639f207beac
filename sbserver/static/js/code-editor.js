/* The function editor: a line-number gutter and JavaScript highlighting drawn under a plain
 * <textarea>, which stays the real input (keyboard, selection, undo, screen readers, Tab leaves
 * the field). Without this script the textarea works as it is. Ctrl/Cmd+S submits the form. */
(function () {
  "use strict";
  var TOKENS = new RegExp(
    [
      "(\\/\\/[^\\n]*|\\/\\*[\\s\\S]*?(?:\\*\\/|$))", // 1 comment
      "(\"(?:\\\\[\\s\\S]|[^\"\\\\\\n])*\"?|'(?:\\\\[\\s\\S]|[^'\\\\\\n])*'?|`(?:\\\\[\\s\\S]|[^`\\\\])*`?)", // 2 string
      "\\b(\\d+(?:\\.\\d+)?(?:[eE][+-]?\\d+)?)\\b", // 3 number
      "\\b(var|let|const|function|return|if|else|for|while|do|break|continue|new|try|catch|finally|throw|" +
        "typeof|instanceof|in|of|switch|case|default|delete|void|async|await|class|extends|this)\\b", // 4 keyword
      "\\b(true|false|null|undefined|NaN)\\b", // 5 literal
      "\\b([A-Za-z_$][\\w$]*)(?=\\s*\\()", // 6 call
    ].join("|"),
    "g"
  );
  var CLASSES = [null, "tok-comment", "tok-string", "tok-number", "tok-keyword", "tok-literal", "tok-call"];

  function escape(text) {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function highlight(code) {
    var out = "";
    var last = 0;
    code.replace(TOKENS, function (match) {
      var offset = arguments[arguments.length - 2];
      var kind = 1;
      while (kind < CLASSES.length && arguments[kind] === undefined) kind++;
      out += escape(code.slice(last, offset)) + '<span class="' + CLASSES[kind] + '">' + escape(match) + "</span>";
      last = offset + match.length;
      return match;
    });
    // a trailing newline needs a character after it, or the overlay is one line short
    return out + escape(code.slice(last)) + "\n ";
  }

  function setUp(root) {
    var area = root.querySelector("textarea");
    var layer = root.querySelector(".code-highlight");
    var code = layer.querySelector("code");
    var gutter = root.querySelector(".code-gutter");
    var lines = -1;
    function draw() {
      code.innerHTML = highlight(area.value);
      var n = area.value.split("\n").length;
      if (n !== lines) {
        lines = n;
        var numbers = [];
        for (var i = 1; i <= n; i++) numbers.push(i);
        gutter.textContent = numbers.join("\n") + "\n ";
      }
      sync();
    }
    function sync() {
      layer.scrollTop = area.scrollTop;
      layer.scrollLeft = area.scrollLeft;
      gutter.scrollTop = area.scrollTop;
    }
    area.addEventListener("input", draw);
    area.addEventListener("scroll", sync);
    area.addEventListener("keydown", function (event) {
      if ((event.ctrlKey || event.metaKey) && event.key === "s") {
        event.preventDefault();
        if (area.form) area.form.requestSubmit();
      }
    });
    root.classList.add("is-enhanced");
    draw();
  }

  function start() {
    var editors = document.querySelectorAll("[data-code-editor]");
    for (var i = 0; i < editors.length; i++) setUp(editors[i]);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
