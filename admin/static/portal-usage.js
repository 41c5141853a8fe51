// The portal's usage charts (admin/portal/templates/portal/usage.html): fetch the JSON of each
// chart's data-url (/portal/usage/data) and draw download and upload per bucket as bars with
// uPlot (vendored). A day of the daily chart, clicked, opens its hours (data-day-link).
"use strict";
(function () {
  if (typeof uPlot === "undefined") { return; }

  function unit(n) {
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
  }
  const bytes = (u, v) => (v == null ? "–" : unit(v));
  const pad = (n) => String(n).padStart(2, "0");

  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  function tick(ts, daily) {  // UTC, 24-hour: "3 Dec", "18:00"
    if (ts == null) { return ""; }
    const d = new Date(ts * 1000);
    return daily ? d.getUTCDate() + " " + MONTHS[d.getUTCMonth()] : pad(d.getUTCHours()) + ":00";
  }

  function height() { return window.innerWidth < 700 ? 220 : 280; }
  function width(el) { return Math.max(el.clientWidth, 200); }

  function draw(el, note, data) {
    const daily = data.step_s >= 86400;
    const bars = uPlot.paths && uPlot.paths.bars;
    const style = (align) => (bars ? { paths: bars({ size: [0.45, 24], align: align }), points: { show: false } } : {});
    note.textContent = "In all: " + unit(data.total_down) + " down, " + unit(data.total_up) + " up.";
    const opts = {
      width: width(el),
      height: height(),
      series: [
        { label: daily ? "Day (UTC)" : "Hour (UTC)",
          value: (u, ts) => {
            if (ts == null) { return "–"; }
            const d = new Date(ts * 1000);
            return daily ? d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate())
              : pad(d.getUTCHours()) + ":00";
          } },
        Object.assign({ label: "Download", stroke: "#1f5fbf", fill: "rgba(31, 95, 191, 0.55)", width: 1, value: bytes },
          style(-1)),
        Object.assign({ label: "Upload", stroke: "#1b7a3d", fill: "rgba(27, 122, 61, 0.55)", width: 1, value: bytes },
          style(1)),
      ],
      axes: [{ values: (u, vals) => vals.map((ts) => tick(ts, daily)) },
        { values: (u, vals) => vals.map((v) => unit(v)), size: 72 }],
      scales: {
        // half a bucket of room at either end, so the first and last bars are whole
        x: { time: true, range: (u, min, max) => [min - data.step_s / 2, max + data.step_s / 2] },
        y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      cursor: { points: { show: false } },
    };
    const chart = new uPlot(opts, [data.t, data.bytes_down, data.bytes_up], el);
    el.dataset.drawn = "1";
    if (daily && el.dataset.dayLink) {
      chart.over.addEventListener("click", () => {
        const i = chart.cursor.idx;
        if (i == null || data.bytes_down[i] == null) { return; }
        const d = new Date(data.t[i] * 1000);
        const day = d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());
        window.location.href = el.dataset.dayLink + day + "#hours";
      });
      chart.over.classList.add("clickable");
    }
    window.addEventListener("resize", () => chart.setSize({ width: width(el), height: height() }));
  }

  document.querySelectorAll(".chart[data-url]").forEach((el) => {
    const note = document.querySelector('.chart-note[data-for="' + el.id + '"]') || document.createElement("p");
    fetch(el.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then((data) => draw(el, note, data))
      .catch((e) => { note.textContent = "The traffic could not be loaded: " + e.message; });
  });
})();
