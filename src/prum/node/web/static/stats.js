// Statistics charts with the Plotly bundle served by this node (no network).
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("stats-data").textContent);
  const layout = (title, extra) => Object.assign({
    title: { text: title, font: { size: 15 } }, margin: { t: 40, r: 20, b: 50, l: 50 },
    legend: { orientation: "h", y: -0.2 }, font: { family: "system-ui, sans-serif", color: "#1a1a1a" },
  }, extra || {});
  const config = { displaylogo: false, responsive: true };

  Plotly.newPlot("chart-monthly",
    data.monthly.map((row) => ({ type: "bar", name: row.label, x: data.months, y: row.values })),
    layout("This node per month", { barmode: "group", xaxis: { type: "category" } }), config);

  const countries = Object.keys(data.answers);
  const statuses = ["answers", "refusals", "timeouts", "unavailable", "errors"];
  Plotly.newPlot("chart-answers",
    statuses.map((s) => ({ type: "bar", name: s, x: countries, y: countries.map((c) => data.answers[c][s] || 0) })),
    layout("Answers per requested country", { barmode: "group", xaxis: { type: "category" } }), config);

  Plotly.newPlot("chart-response",
    Object.entries(data.response).map(([party, series]) => ({
      type: "bar", name: party, x: Object.keys(series), y: Object.values(series),
    })),
    layout("Mean response time (ms)", { barmode: "group", xaxis: { type: "category" } }), config);
})();
