// Live job view: polls the job and its new log lines until the job has finished.
(function () {
  "use strict";
  var root = document.getElementById("job");
  if (!root) { return; }
  var finished = ["succeeded", "failed", "cancelled"];
  var log = document.querySelector("[data-field=log]");
  var lastId = 0;
  log.querySelectorAll("li[data-id]").forEach(function (li) {
    lastId = Math.max(lastId, parseInt(li.dataset.id, 10));
  });

  function field(name) { return root.querySelector("[data-field=" + name + "]"); }
  function stamp(iso) { return iso ? iso.replace("T", " ").slice(0, 19) : "—"; }

  function render(job) {
    var badge = field("status");
    badge.textContent = job.status;
    badge.className = "badge badge-" + job.status;
    field("message").textContent = job.message;
    field("progress").value = job.progress;
    field("progress-text").textContent = job.progress + "%";
    field("started").textContent = stamp(job.started);
    field("finished").textContent = stamp(job.finished);
    var error = field("error");
    error.textContent = job.error;
    error.hidden = !job.error;
  }

  function appendLines(lines) {
    lines.forEach(function (line) {
      var li = document.createElement("li");
      li.className = "log-" + line.level;
      li.dataset.id = line.id;
      var time = document.createElement("time");
      time.textContent = line.time.slice(11, 19);
      li.appendChild(time);
      li.appendChild(document.createTextNode(" " + line.message));
      log.appendChild(li);
      lastId = Math.max(lastId, line.id);
    });
  }

  function get(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); });
  }

  function poll() {
    Promise.all([get(root.dataset.jobUrl), get(root.dataset.logUrl + "?after=" + lastId)])
      .then(function (results) {
        render(results[0]);
        appendLines(results[1]);
        if (finished.indexOf(results[0].status) === -1) {
          setTimeout(poll, 1000);
        } else {
          document.querySelectorAll("[data-hide-when-done]").forEach(function (el) { el.hidden = true; });
        }
      })
      .catch(function () { setTimeout(poll, 5000); });
  }

  if (finished.indexOf(root.dataset.status) === -1) { setTimeout(poll, 1000); }
})();

// Job lists: while a listed job is queued or running, refresh the rows every two seconds.
(function () {
  "use strict";
  var table = document.querySelector("[data-live-jobs]");
  if (!table) { return; }
  function busy(root) { return root.querySelector(".badge-queued, .badge-running") !== null; }
  function refresh() {
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html")
          .querySelector("[data-live-jobs] tbody");
        if (fresh) { table.replaceChild(document.importNode(fresh, true), table.tBodies[0]); }
        if (busy(table)) { setTimeout(refresh, 2000); }
      })
      .catch(function () { setTimeout(refresh, 10000); });
  }
  if (busy(table)) { setTimeout(refresh, 2000); }
})();

// Job tables (dcportal.tables): while a listed job is queued or running, refresh the rows
// every two seconds. Only the rows and the count are replaced, so what the user is typing in
// the search box stays, and the rows they selected stay selected.
(function () {
  "use strict";
  var holder = document.querySelector("[data-live-table]");
  if (!holder) { return; }
  var timer = null;
  function region() { return document.getElementById(holder.dataset.liveTable); }
  function busy() {
    var root = region();
    return root !== null && root.querySelector("tbody .badge-queued, tbody .badge-running") !== null;
  }
  function schedule(delay) {
    if (timer === null && busy()) { timer = setTimeout(refresh, delay); }
  }
  function refresh() {
    timer = null;
    var url = window.location.href;
    fetch(url, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
      .then(function (html) {
        var root = region();
        if (!root || url !== window.location.href) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(root.id);
        var body = root.querySelector("table tbody");
        var freshBody = fresh && fresh.querySelector("table tbody");
        if (body && freshBody) {
          var chosen = {};
          body.querySelectorAll("input[name=ids]:checked").forEach(function (box) { chosen[box.value] = true; });
          freshBody.querySelectorAll("input[name=ids]").forEach(function (box) { box.checked = !!chosen[box.value]; });
          body.parentNode.replaceChild(document.importNode(freshBody, true), body);
          var count = root.querySelector(".count"), freshCount = fresh.querySelector(".count");
          if (count && freshCount) { count.innerHTML = freshCount.innerHTML; }
          var form = root.querySelector("form[data-selection]");
          if (form) { form.dispatchEvent(new Event("change", { bubbles: true })); }
        }
        schedule(2000);
      })
      .catch(function () { timer = null; setTimeout(function () { schedule(0); }, 10000); });
  }
  // Sorting, filtering or paging swaps the region in: keep following its jobs.
  document.addEventListener("htmx:afterSettle", function () { schedule(2000); });
  schedule(2000);
})();
