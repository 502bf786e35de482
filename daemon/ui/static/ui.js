// previewd dashboard: times in the viewer's timezone, the live build log (opened at its end), the visual-diff slider and modes.
// Everything works without it; it only adds.
(function () {
  "use strict";

  function localTimes(root) {
    var fmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.title = el.textContent; el.textContent = fmt.format(d); }
    });
  }

  function followLog(pre) {
    var url = pre.getAttribute("data-stream");
    if (!url || !window.EventSource) { return; }
    var es = new EventSource(url);
    var badge = document.getElementById("following");
    es.onmessage = function (ev) {
      var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      pre.appendChild(document.createTextNode(ev.data + "\n"));
      if (atEnd) { pre.scrollTop = pre.scrollHeight; }
    };
    es.addEventListener("status", function (ev) {
      es.close();
      var st = JSON.parse(ev.data);
      var el = document.getElementById("status");
      if (el) { el.textContent = st.status; el.className = "status " + st.status; }
      if (badge) {
        badge.textContent = "finished: " + st.status + (st.failureReason ? " (" + st.failureReason + ")" : "") + " · ";
        var again = document.createElement("a");
        again.href = window.location.pathname;
        again.textContent = "reload for files, screenshots and timings";
        badge.appendChild(again);
      }
    });
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED && badge) { badge.textContent = "stream closed; reload to see the rest"; }
    };
  }

  function visual(box) {
    var stage = box.querySelector(".stage.slider, .stage.side");
    var overlay = box.querySelector(".stage.overlay");
    var range = box.querySelector("[data-slider]");
    var clip = box.querySelector(".clip");
    function slide() { clip.style.clipPath = "inset(0 0 0 " + range.value + "%)"; }
    range.addEventListener("input", slide);
    box.querySelectorAll("input[type=radio]").forEach(function (radio) {
      radio.addEventListener("change", function () {
        var mode = radio.value;
        stage.hidden = mode === "overlay";
        overlay.hidden = mode !== "overlay";
        range.parentElement.hidden = mode !== "slider";
        stage.classList.toggle("slider", mode === "slider");
        stage.classList.toggle("side", mode === "side");
        clip.style.clipPath = mode === "slider" ? "inset(0 0 0 " + range.value + "%)" : "none";
      });
    });
    slide();
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    // A stored log opens at its end, where a failed build says why (its first error line is marked above it).
    document.querySelectorAll("pre[data-end]").forEach(function (pre) { pre.scrollTop = pre.scrollHeight; });
    document.querySelectorAll("pre[data-stream]").forEach(followLog);
    document.querySelectorAll("[data-visual]").forEach(visual);
  });
})();
