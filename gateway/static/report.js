// Draws the experiment report as SVG bar charts. No dependencies, no network beyond the gateway.
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

  function render(report) {
    document.getElementById("experiment").textContent = report.experiment;
    document.getElementById("mode").textContent = report.mode;
    const names = Object.keys(report.variants);
    const charts = document.getElementById("charts");
    const metrics = [
      ["searches", "Searches", (v) => v.searches],
      ["ctr_at_k", "CTR@" + report.k, (v) => v.ctr_at_k],
      ["mrr", "MRR of first click", (v) => v.mrr],
      ["abandonment", "Abandonment rate", (v) => v.abandonment],
      ["latency_p50", "Latency p50 (ms)", (v) => v.latency_ms.p50],
      ["latency_p99", "Latency p99 (ms)", (v) => v.latency_ms.p99],
    ];
    for (const [key, title, get] of metrics) {
      charts.appendChild(barChart(key, title, names.map((n) => ({ label: n, value: get(report.variants[n]) }))));
    }
    const tbody = document.querySelector("#table tbody");
    for (const n of names) {
      const v = report.variants[n];
      const tr = document.createElement("tr");
      for (const cell of [n, v.searches, v.clicks, fmt(v.ctr_at_k), fmt(v.mrr), fmt(v.abandonment),
                          fmt(v.latency_ms.p50), fmt(v.latency_ms.p99)]) {
        const td = document.createElement("td");
        td.textContent = String(cell);
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    }
    const il = report.interleaving;
    const ilBox = document.getElementById("interleaving");
    ilBox.appendChild(barChart("interleaving", "Treatment wins / losses / ties (p = " + fmt(il.p_value) + ")", [
      { label: "wins", value: il.wins }, { label: "losses", value: il.losses }, { label: "ties", value: il.ties },
    ]));
    const sh = document.getElementById("shadow");
    for (const [name, s] of Object.entries(report.shadow)) {
      sh.appendChild(barChart("shadow-" + name, "Shadow " + name + " (" + s.measured + " measured)", [
        { label: "overlap@k", value: s.overlap_at_k },
        { label: "Kendall tau", value: s.kendall_tau },
        { label: "first hit rank", value: s.first_baseline_hit_rank },
      ]));
    }
    document.getElementById("status").textContent = "ok";
  }

  fetch("/_gateway/experiments/report")
    .then((r) => { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
    .then(render)
    .catch((e) => { document.getElementById("status").textContent = "error: " + e.message; });
})();
