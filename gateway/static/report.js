// Adds SVG bar charts to the experiment report page (the figures themselves are in its HTML). No dependencies, no network beyond the gateway.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2"];

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (Number.isInteger(v)) return String(v);
    return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(3);
  }

  // One bar per (label, value); returns a <figure> holding the <svg>.
  function barChart(metric, title, rows) {
    const width = 320, barH = 22, pad = 110, height = rows.length * (barH + 6) + 10;
    const max = Math.max(1e-9, ...rows.map((r) => r.value || 0));
    const svg = el("svg", { width, height, "data-metric": metric, role: "img" });
    rows.forEach((r, i) => {
      const y = 5 + i * (barH + 6);
      const w = Math.max(1, ((r.value || 0) / max) * (width - pad - 50));
      svg.appendChild(el("text", { x: 0, y: y + 15, "font-size": 12 }, r.label));
      svg.appendChild(el("rect", {
        x: pad, y, width: w, height: barH, fill: COLORS[i % COLORS.length],
        "data-variant": r.label, "data-value": r.value === null ? "" : r.value,
      }));
      svg.appendChild(el("text", { x: pad + w + 4, y: y + 15, "font-size": 12 }, fmt(r.value)));
    });
    const fig = document.createElement("figure");
    const cap = document.createElement("figcaption");
    cap.textContent = title;
    fig.append(cap, svg);
    return fig;
  }

  // Adds charts of the active mode's figures; every number is already in the served page.
  function render(report) {
    const charts = document.getElementById("charts");
    const add = (key, title, rows) => charts.appendChild(barChart(key, title, rows));
    if (report.mode === "ab") {
      const names = Object.keys(report.variants);
      const metrics = [
        ["ctr_at_k", "CTR@" + report.k, (v) => v.ctr_at_k],
        ["mrr", "MRR of first click", (v) => v.mrr],
        ["abandonment", "Abandonment rate", (v) => v.abandonment],
        ["latency_p50", "Latency p50 (ms)", (v) => v.latency_ms.p50],
      ];
      for (const [key, title, get] of metrics) {
        add(key, title, names.map((n) => ({ label: n, value: get(report.variants[n]) })));
      }
    } else if (report.mode === "interleave") {
      const il = report.interleaving;
      add("interleaving", "Treatment wins / losses / ties", [
        { label: "wins", value: il.wins }, { label: "losses", value: il.losses }, { label: "ties", value: il.ties },
      ]);
    } else if (report.mode === "shadow") {
      for (const [name, s] of Object.entries(report.shadow)) {
        add("shadow-" + name, "Shadow " + name + " (" + s.measured + " measured)", [
          { label: "overlap@k", value: s.overlap_at_k },
          { label: "Kendall tau", value: s.kendall_tau },
        ]);
      }
    }
    charts.setAttribute("data-drawn", "true");
  }

  fetch("/_gateway/experiments/report")
    .then((r) => { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
    .then(render)
    .catch((e) => { document.getElementById("charts").textContent = "charts unavailable: " + e.message; });
})();
