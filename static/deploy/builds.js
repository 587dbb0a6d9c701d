/* The builds list refreshes itself while a build it shows is in progress: the list region
   (tabs and table) is fetched again with htmx from the page's current address, unless the
   user is choosing rows or typing in it. */
(function () {
  "use strict";

  var EVERY = 5000;

  function busy(region) {
    if (region.querySelector("input[name=ids]:checked")) return true;
    var active = document.activeElement;
    if (active && region.contains(active) && active.matches("input, select, textarea")) return true;
    return !!region.querySelector(".column-chooser[open]");
  }

  function tick() {
    var region = document.getElementById("builds-live");
    if (!region || !region.hasAttribute("data-polling") || !window.htmx) return;
    if (document.hidden || busy(region)) return;
    window.htmx.ajax("GET", window.location.href, {
      source: region,
      target: "#builds-live",
      select: "#builds-live",
      swap: "outerHTML",
    });
  }

  window.setInterval(tick, EVERY);
})();
