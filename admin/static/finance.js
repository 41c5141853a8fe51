// Finance reports (admin/finance/templates/finance/reports.html): fetch the charts' JSON (the
// element's data-url) and draw each with uPlot (vendored): money on the left axis, counts on
// the right; days and months on a UTC time axis, debt's age buckets as bars.
"use strict";
(function () {
  const root = document.getElementById("finance-charts");
  if (!root || typeof uPlot === "undefined") { return; }
  const COLOURS = ["#1f5fbf", "#1b7a3d", "#a05a00", "#b3261e", "#6b4fbb", "#00838f"];
  const COUNT = "#5b6475";
  const BARS = ["debt", "payments"];

  function format(n, unit) {
    if (n == null || Number.isNaN(n)) { return ""; }
    const digits = unit ? 2 : 0;
    const text = n.toLocaleString("en", { minimumFractionDigits: digits, maximumFractionDigits: digits });
    return unit ? text + " " + unit : text;
  }
  const epoch = (iso) => Date.parse(iso + "T00:00:00Z") / 1000;
  const width = (el) => Math.max(el.clientWidth, 300);

  function summary(name, chart) {
    const parts = chart.series.map((s) => {
      const values = s.values.map(Number);
      const shown = (name === "debt" || name === "payments")
        ? values.reduce((a, b) => a + b, 0) : values[values.length - 1];
      return s.label + ": " + format(shown, s.unit);
    });
    const what = (name === "debt") ? "Altogether" : (name === "payments") ? "In the period" : "Last";
    return parts.length ? what + ": " + parts.join(", ") : "Nothing yet.";
  }

  function draw(name, chart) {
    const el = root.querySelector('[data-chart="' + name + '"]');
    const status = root.querySelector('[data-status="' + name + '"]');
    if (!el) { return; }
    status.textContent = summary(name, chart);
    const categorical = name === "debt";
    const xs = categorical ? chart.x.map((_, i) => i) : chart.x.map(epoch);
    const bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.6, 40] }) : null;
    let colour = 0;
    const series = [{
      label: categorical ? "Age" : (name === "mrr" ? "Month" : "Day"),
      value: categorical ? (u, v) => (v == null ? "" : chart.x[v]) : undefined,
    }];
    const used = new Set();
    chart.series.forEach((s) => {
      const money = Boolean(s.unit);
      const stroke = money ? COLOURS[colour++ % COLOURS.length] : COUNT;
      used.add(money ? "money" : "n");
      const asBars = money && BARS.includes(name) && bars;
      series.push({
        label: s.label, scale: money ? "money" : "n", stroke: stroke, width: money ? 1.5 : 1,
        fill: asBars ? stroke + "99" : (money ? stroke + "1f" : undefined),
        dash: money ? undefined : [4, 3],
        paths: asBars ? bars : (categorical && !money ? () => null : undefined),  // counts of buckets: points
        points: { show: categorical || !money, size: categorical ? 8 : 4 }, value: (u, v) => format(v, s.unit),
      });
    });
    const axes = [categorical
      ? { values: (u, vals) => vals.map((v) => (Number.isInteger(v) ? (chart.x[v] || "") : "")), gap: 8 }
      : {}];
    if (used.has("money")) {
      axes.push({ scale: "money", size: 80, values: (u, vals) => vals.map((v) => format(v, "")) });
    }
    if (used.has("n")) {
      axes.push({ scale: "n", side: 1, size: 50, grid: { show: !used.has("money") },
                  values: (u, vals) => vals.map((v) => (Number.isInteger(v) ? format(v, "") : "")) });
    }
    const opts = {
      width: width(el), height: 260, series: series, axes: axes,
      scales: { x: categorical ? { time: false, range: [-0.5, chart.x.length - 0.5] } : { time: true },
                money: { range: (u, min, max) => [Math.min(0, min), Math.max(max, 1)] },
                n: { range: (u, min, max) => [0, Math.max(max, 1)] } },
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),  // UTC, as every time in the admin
    };
    const data = [xs, ...chart.series.map((s) => s.values.map(Number))];
    const plot = new uPlot(opts, data, el);
    window.addEventListener("resize", () => plot.setSize({ width: width(el), height: 260 }));
  }

  fetch(root.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then((r) => { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
    .then((charts) => { Object.keys(charts).forEach((name) => draw(name, charts[name])); })
    .catch((e) => {
      root.querySelectorAll("[data-status]").forEach((p) => { p.textContent = "The chart could not be loaded: " + e.message; });
    });
})();
