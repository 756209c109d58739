// chartd inspector: live counts on the diagram, the active states lit, the event stream.
// Every value reaches the page as text (textContent); the only markup set here is what
// the server rendered and escaped (an entity's data and timeline).
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var page = JSON.parse(document.getElementById("chartd-page").textContent);

  function shapes() {
    return Array.prototype.slice.call(document.querySelectorAll("svg.diagram [data-state]"));
  }

  function drawCounts(counts) {
    shapes().forEach(function (g) {
      var old = g.querySelector(".badge");
      if (old) { old.parentNode.removeChild(old); }
      var n = counts[g.getAttribute("data-state")] || 0;
      g.setAttribute("data-count", String(n));
      if (!n) { return; }
      var box = g.getBBox();
      var badge = document.createElementNS(SVG, "g");
      badge.setAttribute("class", "badge");
      var label = String(n);
      var width = 8 + 7 * label.length;
      var rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", String(box.x + box.width - width / 2));
      rect.setAttribute("y", String(box.y - 8));
      rect.setAttribute("width", String(width));
      rect.setAttribute("height", "16");
      rect.setAttribute("rx", "8");
      var text = document.createElementNS(SVG, "text");
      text.setAttribute("x", String(box.x + box.width));
      text.setAttribute("y", String(box.y + 4));
      text.setAttribute("text-anchor", "middle");
      text.textContent = label;
      badge.appendChild(rect);
      badge.appendChild(text);
      g.appendChild(badge);
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-count-state]"), function (cell) {
      cell.textContent = String(counts[cell.getAttribute("data-count-state")] || 0);
    });
  }

  function highlight(configuration) {
    shapes().forEach(function (g) {
      var on = configuration.indexOf(g.getAttribute("data-state")) >= 0;
      g.classList.toggle("active", on);
    });
  }

  function setText(id, value) {
    var el = document.getElementById(id);
    if (el) { el.textContent = String(value); }
  }

  function showEntity(view) {
    highlight(view.configuration);
    setText("entity-state", view.state);
    setText("entity-version", view.version);
    setText("entity-updated", view.updated);
    // Rendered and escaped by the server, as the page was.
    document.getElementById("entity-data").innerHTML = view.data;
    if (typeof view.timeline === "string") {
      document.getElementById("timeline").innerHTML = view.timeline;
    } else if (view.transitions) {
      merge(view.transitions, view.gap);
    }
    document.body.setAttribute("data-version", String(view.version));
  }

  // New and changed transitions into the timeline: one already there (by id) is
  // replaced, a new one goes at the end; the oldest go beyond page.history.
  function merge(fragment, gap) {
    var box = document.getElementById("timeline");
    var list = box.querySelector("ol.timeline");
    if (!list) {
      box.textContent = "";
      list = document.createElement("ol");
      list.className = "timeline";
      box.appendChild(list);
    }
    var holder = document.createElement("ol");
    holder.innerHTML = fragment;
    if (gap) {
      var note = document.createElement("li");
      note.className = "gap note";
      note.textContent = "More transitions came than a live update carries: reload to see them all.";
      list.appendChild(note);
    }
    Array.prototype.slice.call(holder.children).forEach(function (item) {
      var id = item.getAttribute("data-transition");
      var old = null;
      Array.prototype.forEach.call(list.children, function (li) {
        if (li.getAttribute("data-transition") === id) { old = li; }
      });
      if (old) { list.replaceChild(item, old); } else { list.appendChild(item); }
    });
    while (list.children.length > (page.history || 200)) { list.removeChild(list.firstElementChild); }
  }

  function showOverview(chart, counts) {
    var row = null;
    Array.prototype.forEach.call(document.querySelectorAll("tr[data-chart]"), function (tr) {
      if (tr.getAttribute("data-chart") === chart) { row = tr; }
    });
    if (!row) { return; }
    var total = 0;
    var cell = row.querySelector(".states");
    cell.textContent = "";
    Object.keys(counts).sort().forEach(function (state) {
      if (state.indexOf(".") < 0) { total += counts[state]; }
      var span = document.createElement("span");
      span.className = "count";
      span.setAttribute("data-state", state);
      span.appendChild(document.createTextNode(state + ": "));
      var b = document.createElement("b");
      b.textContent = String(counts[state]);
      span.appendChild(b);
      cell.appendChild(span);
    });
    row.querySelector(".total").textContent = String(total);
  }

  function showRow(message) {
    Array.prototype.forEach.call(document.querySelectorAll("tr[data-entity]"), function (tr) {
      if (tr.getAttribute("data-entity") === message.id) {
        tr.querySelector(".state").textContent = message.state;
      }
    });
  }

  function receive(message) {
    if (message.type === "counts") {
      if (page.kind === "charts") { showOverview(message.chart, message.counts); }
      else if (message.chart === page.chart) { drawCounts(message.counts); }
    } else if (message.type === "row") {
      showRow(message);
    } else if (message.type === "entity" && message.id === page.entity) {
      showEntity(message);
    } else if (message.type === "reload") {
      window.location.reload();
    }
  }

  function follow() {
    if (!page.stream || !window.EventSource) { return; }
    var source = new EventSource(page.stream);
    source.onopen = function () { document.body.setAttribute("data-live", "yes"); };
    source.onmessage = function (e) { receive(JSON.parse(e.data)); };
    source.onerror = function () { document.body.setAttribute("data-live", "no"); };
  }

  function fireForm() {
    var form = document.getElementById("fire");
    var token = document.querySelector('meta[name="chartd-csrf"]');
    if (!form || !token) { return; }
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var out = document.getElementById("fire-result");
      var params;
      try { params = JSON.parse(form.elements.params.value || "{}"); }
      catch (err) { out.textContent = "params: not JSON"; return; }
      fetch(form.getAttribute("action"), {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Chartd-CSRF": token.content },
        body: JSON.stringify({ event: form.elements.event.value, params: params }),
        credentials: "same-origin"
      }).then(function (r) { return r.json(); }).then(function (body) {
        out.textContent = body.error ? body.error + ": " + body.message : "fired: " + body.state;
      });
    });
  }

  if (page.kind === "chart") { drawCounts(page.counts || {}); }
  if (page.kind === "entity") { highlight(page.configuration || []); }
  if (page.kind === "charts") {
    Object.keys(page.counts || {}).forEach(function (c) { showOverview(c, page.counts[c]); });
  }
  fireForm();
  follow();
}());
