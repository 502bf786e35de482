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

  // Step progress: the current step's timer ticks; a `step` event moves it on; the end marks it done or failed.
  var PHASES = ["queued", "generating", "installing", "building", "deploying", "checking"];
  var stepsBox = document.getElementById("steps");
  var since = stepsBox ? Date.parse(stepsBox.getAttribute("data-since")) : NaN;
  var ticking = null;

  function clock(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    return Math.floor(s / 60) + ":" + ("0" + (s % 60)).slice(-2);
  }

  function tick() {
    var t = stepsBox && stepsBox.querySelector("[data-timer]");
    if (t && !isNaN(since)) { t.textContent = clock(Date.now() - since); }
  }

  function setStatus(status) {
    var el = document.getElementById("status");
    if (el) { el.textContent = status; el.className = "status " + status; }
  }

  function markSteps(current, final) {  // final: "" while running, else "done" or "failed"
    if (!stepsBox) { return; }
    var at = PHASES.indexOf(current);
    stepsBox.querySelectorAll("li[data-step]").forEach(function (li) {
      var i = PHASES.indexOf(li.getAttribute("data-step"));
      var state = i < at ? "done" : i === at ? (final || "current") : "todo";
      if (final === "done" && i <= at) { state = "done"; }
      if (li.className === "step " + state) { return; }
      li.className = "step " + state;
      var label = li.querySelector(".step-state");
      label.textContent = "";
      if (state === "current") {
        var t = document.createElement("span");
        t.className = "timer";
        t.setAttribute("data-timer", "");
        label.appendChild(t);
      } else if (state === "failed") { label.textContent = "failed"; }
      else if (state === "done" && i === at) { label.textContent = "done"; }
    });
    tick();
  }

  function followLog(pre) {
    var url = pre.getAttribute("data-stream");
    if (!url || !window.EventSource) { return; }
    var es = new EventSource(url);
    var badge = document.getElementById("following");
    es.addEventListener("step", function (ev) {
      var st = JSON.parse(ev.data);
      since = st.since * 1000;
      markSteps(st.step, "");
      setStatus(st.step === "deploying" ? "deploying" : "building");
    });
    es.onmessage = function (ev) {
      var el = document.getElementById("status");
      if (el && el.textContent === "queued") { setStatus("building"); }  // lines arrive: the worker has it
      var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      pre.appendChild(document.createTextNode(ev.data + "\n"));
      if (atEnd) { pre.scrollTop = pre.scrollHeight; }
    };
    es.addEventListener("status", function (ev) {
      es.close();
      var st = JSON.parse(ev.data);
      setStatus(st.status);
      if (st.status === "failed") {
        var cur = stepsBox && stepsBox.querySelector("li.current");
        markSteps(cur ? cur.getAttribute("data-step") : "building", "failed");
      } else if (st.status === "deployed") {
        markSteps("deploying", "done");
      }
      if (ticking) { clearInterval(ticking); ticking = null; }
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
    if (stepsBox && stepsBox.querySelector("[data-timer]")) { tick(); ticking = setInterval(tick, 1000); }
    // A stored log opens at its end, where a failed build says why (its first error line is marked above it).
    document.querySelectorAll("pre[data-end]").forEach(function (pre) { pre.scrollTop = pre.scrollHeight; });
    document.querySelectorAll("pre[data-stream]").forEach(followLog);
    document.querySelectorAll("[data-visual]").forEach(visual);
  });
})();
