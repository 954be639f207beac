// The live view of one channel (/ui/live/<channel>): reads the page's own SSE stream
// (data-stream on #live) and adds one row per message. Message fields are only ever set as
// text (textContent), never as HTML, so whatever a client sends shows as typed.
(function () {
  "use strict";

  var MAX_ROWS = 500;
  var HIDDEN = { init: true, ok: true };

  function start() {
    var box = document.getElementById("live");
    if (!box || !window.EventSource) return;
    var list = document.getElementById("live-messages");
    var empty = document.getElementById("live-empty");
    var status = document.getElementById("live-status");
    var order = document.getElementById("live-order");
    var clear = document.getElementById("live-clear");
    var stopped = false;

    function say(text, state) {
      status.textContent = text;
      status.setAttribute("data-state", state);
    }

    function el(tag, cls, text) {
      var node = document.createElement(tag);
      if (cls) node.className = cls;
      if (text !== undefined) node.textContent = text;
      return node;
    }

    function pretty(data) {
      if (typeof data !== "string") return String(data);
      var t = data.trim();
      if (t.charAt(0) === "{" || t.charAt(0) === "[") {
        try {
          return JSON.stringify(JSON.parse(t), null, 2);
        } catch (e) {
          return data;
        }
      }
      return data;
    }

    function sender(msg) {
      var auth = msg.auth || {};
      var parts = [];
      if (msg.sid) parts.push(msg.sid);
      if (auth.userId) parts.push("user " + auth.userId + (auth.role >= 100 ? " (root)" : ""));
      return parts.length ? parts.join(" · ") : "server";
    }

    function row(msg) {
      var now = new Date();
      var item = el("li", "live-row");
      item.setAttribute("data-type", String(msg.type));
      var head = el("div", "live-head");
      var when = el("time", "live-time", now.toLocaleTimeString());
      when.setAttribute("datetime", now.toISOString());
      head.appendChild(when);
      head.appendChild(el("span", "badge live-type", String(msg.type)));
      if (msg.channel) head.appendChild(el("code", "live-channel", String(msg.channel)));
      head.appendChild(el("span", "live-sender", sender(msg)));
      item.appendChild(head);
      item.appendChild(el("pre", "live-data", pretty(msg.data)));
      return item;
    }

    function add(msg) {
      var item = row(msg);
      if (order.value === "top") list.insertBefore(item, list.firstChild);
      else list.appendChild(item);
      while (list.children.length > MAX_ROWS) {
        list.removeChild(order.value === "top" ? list.lastChild : list.firstChild);
      }
      empty.hidden = true;
    }

    function refreshPresence() {
      var p = document.getElementById("presence");
      if (p && window.htmx) window.htmx.trigger(p, "refresh");
    }

    order.addEventListener("change", function () {
      var rows = Array.prototype.slice.call(list.children).reverse();
      rows.forEach(function (r) { list.appendChild(r); });
    });
    clear.addEventListener("click", function () {
      list.textContent = "";
      empty.hidden = false;
    });

    var source = new EventSource(box.getAttribute("data-stream"));
    source.onopen = function () { say("Connected: joining…", "wait"); };
    source.onmessage = function (event) {
      var msg;
      try {
        msg = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (!msg || typeof msg !== "object") return;
      if (msg.type === "ok") {
        say("Live: joined " + msg.data, "live");
        refreshPresence();
      }
      if (msg.type === "error") {
        stopped = true;
        source.close();
        say("Stopped: " + msg.data, "error");
        return;
      }
      if (HIDDEN[msg.type]) return;
      if (msg.type === "joined") refreshPresence();
      add(msg);
    };
    source.onerror = function () {
      if (stopped) return;
      if (source.readyState === EventSource.CLOSED) {
        say("Disconnected: reload the page (sign in again if your session ended)", "error");
      } else {
        say("Connection lost: reconnecting…", "wait");
      }
    };
    window.addEventListener("pagehide", function () { source.close(); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
