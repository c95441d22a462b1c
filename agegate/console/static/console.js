// Optional: ticks the server-rendered lease countdown; the page works the same without it.
(function () {
  "use strict";
  function format(s) {
    if (s <= 0) { return "0 s (expired: reload to see the queue)"; }
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    if (h) { return h + " h " + m + " min"; }
    if (m) { return m + " min " + r + " s"; }
    return r + " s";
  }
  document.addEventListener("DOMContentLoaded", function () {
    var clocks = document.querySelectorAll("[data-countdown]");
    if (!clocks.length) { return; }
    var start = Date.now();
    function tick() {
      var gone = Math.floor((Date.now() - start) / 1000);
      clocks.forEach(function (el) {
        el.textContent = format(parseInt(el.getAttribute("data-countdown"), 10) - gone);
      });
    }
    setInterval(tick, 1000);
  });
})();
