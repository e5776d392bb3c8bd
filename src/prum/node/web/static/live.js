// A search's live page: each country's status as it answers (polled once a second);
// once every answer is in, the page reloads with the candidates. Without script the
// page refreshes itself (a meta refresh in a noscript element).
(function () {
  "use strict";
  const table = document.getElementById("statuses");
  if (!table || !table.dataset.progress) return;
  const body = table.querySelector("tbody");

  function cell(tag, text, attrs) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    node.textContent = text;
    return node;
  }

  function show(countries) {
    if (!countries.length) return;
    body.replaceChildren(...countries.map((c) => {
      const row = document.createElement("tr");
      row.dataset.party = c.party;
      row.append(cell("th", c.party, { scope: "row" }));
      const status = document.createElement("td");
      status.append(cell("span", c.label, { class: "status " + c.status }));
      row.append(status);
      row.append(cell("td", c.candidates === null || c.candidates === undefined ? "–" : String(c.candidates)));
      row.append(cell("td", "–"));
      row.append(cell("td", c.duration_ms === null || c.duration_ms === undefined ? "–" : Math.round(c.duration_ms) + " ms"));
      row.append(cell("td", ""));
      return row;
    }));
  }

  async function poll() {
    try {
      const response = await fetch(table.dataset.progress, { headers: { accept: "application/json" } });
      if (response.ok) {
        const state = await response.json();
        show(state.countries);
        if (state.status !== "sent") { window.location.reload(); return; }
      }
    } catch (error) { /* the node is restarting: try again */ }
    window.setTimeout(poll, 1000);
  }
  window.setTimeout(poll, 500);
})();
