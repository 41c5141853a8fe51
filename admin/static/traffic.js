// A service's traffic graph (admin/sessions/templates/sessions/traffic.html): fetch the JSON of
// the element's data-url and draw download and upload in bit/s with uPlot (vendored).
"use strict";
(function () {
  const el = document.getElementById("traffic-chart");
  const totals = document.getElementById("traffic-totals");
  if (!el || typeof uPlot === "undefined") { return; }

  function unit(n, suffix) {
    const units = ["", "k", "M", "G", "T"];
    let i = 0;
    while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i] + suffix;
  }
  const rate = (u, v) => (v == null ? "" : unit(v, "bit/s"));

  function draw(data) {
    const perSecond = 8 / data.step_s;  // bytes per bucket -> bit/s
    const down = data.bytes_down.map((b) => b * perSecond);
    const up = data.bytes_up.map((b) => b * perSecond);
    totals.textContent = "Total: " + unit(data.total_down, "B") + " down, " + unit(data.total_up, "B") +
      " up";
    const opts = {
      width: Math.max(el.clientWidth, 300),
      height: 280,
      series: [
        { label: "Time (UTC)" },
        { label: "Download", stroke: "#1f5fbf", fill: "rgba(31, 95, 191, 0.12)", width: 1.5, value: rate },
        { label: "Upload", stroke: "#1b7a3d", width: 1.5, value: rate },
      ],
      axes: [{}, { values: (u, vals) => vals.map((v) => unit(v, "bit/s")), size: 96 }],
      scales: { x: { time: true } },
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),  // UTC, as every time in the admin
    };
    const chart = new uPlot(opts, [data.t, down, up], el);
    window.addEventListener("resize", () => chart.setSize({ width: Math.max(el.clientWidth, 300), height: 280 }));
  }

  fetch(el.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then((r) => { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
    .then(draw)
    .catch((e) => { totals.textContent = "The traffic could not be loaded: " + e.message; });
})();
