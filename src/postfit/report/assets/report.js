// report.html's script: hover values and series toggles on the plots, and the sample browser.
// Offline: it reads only the JSON embedded in the page and never makes a request.
(() => {
  "use strict";
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

  // ---- plots: the nearest visible point's value under the pointer; a checkbox per series
  for (const fig of $$(".pf-plot")) {
    const svg = $("svg", fig), tip = $(".pf-tip", fig), name = fig.dataset.name;
    const data = JSON.parse($(".pf-points", fig).textContent);
    const hidden = new Set();
    for (const box of $$("input[data-series]", fig)) {
      box.addEventListener("change", () => {
        const s = Number(box.dataset.series);
        if (box.checked) hidden.delete(s); else hidden.add(s);
        for (const el of $$(`[id^="${name}-pf-s${s}-"]`, svg)) el.style.display = box.checked ? "" : "none";
      });
    }
    svg.addEventListener("mousemove", (ev) => {
      const at = svg.createSVGPoint();
      at.x = ev.clientX; at.y = ev.clientY;
      const p = at.matrixTransform(svg.getScreenCTM().inverse());
      let best = null, dist = 15 * 15;
      for (const q of data.points) {
        if (hidden.has(q[2])) continue;
        const d = (q[0] - p.x) ** 2 + (q[1] - p.y) ** 2;
        if (d < dist) { dist = d; best = q; }
      }
      if (!best) { tip.hidden = true; return; }
      const box = fig.getBoundingClientRect();
      tip.textContent = best[3];
      tip.hidden = false;
      const x = ev.clientX - box.left, right = x + 14 + tip.offsetWidth > box.width;
      tip.style.left = `${right ? x - 14 - tip.offsetWidth : x + 14}px`; // flipped near the right edge
      tip.style.top = `${ev.clientY - box.top + 14}px`;
    });
    svg.addEventListener("mouseleave", () => { tip.hidden = true; });
  }

  // ---- sample browser
  const root = $("#pf-samples");
  if (!root) return;
  const D = JSON.parse($("#pf-samples-data").textContent);
  const { runs, items, rows } = D; // rows: [run, item, sample, completion, answer, correct, stopped]
  const PAGE = 50, SHORT = 300;
  const unique = (xs) => [...new Set(xs)];
  const fill = (sel, values) => {
    $(sel, root).insertAdjacentHTML("beforeend", values.map((v) => `<option>${esc(v)}</option>`).join(""));
  };
  fill("#pf-f-run", runs.map((r) => r[0]));
  fill("#pf-f-init", unique(runs.map((r) => r[1])));
  fill("#pf-f-recipe", unique(runs.map((r) => r[2])));
  fill("#pf-f-split", unique(items.map((i) => i[0])));
  let text = null, byItem = null, shown = [], page = 0;
  const value = (id) => $(id, root).value;
  const kind = (r) => (r[2] < 0 ? "greedy" : `sample ${r[2]}`);
  const verdict = (r) => (r[5] ? '<span class="pf-ok">correct</span>' : '<span class="pf-bad">wrong</span>');
  const clipped = (r) => D.clip && r[3].length >= D.clip;

  function apply() {
    const run = value("#pf-f-run"), init = value("#pf-f-init"), recipe = value("#pf-f-recipe");
    const split = value("#pf-f-split"), ver = value("#pf-f-verdict"), sample = value("#pf-f-sample");
    const q = value("#pf-f-text").trim().toLowerCase();
    if (q && !text) text = rows.map((r) => `${items[r[1]][2]}\n${r[3]}`.toLowerCase());
    shown = [];
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i], R = runs[r[0]], I = items[r[1]];
      if ((run && R[0] !== run) || (init && R[1] !== init) || (recipe && R[2] !== recipe) || (split && I[0] !== split)) continue;
      if ((ver === "correct" && !r[5]) || (ver === "wrong" && r[5])) continue;
      if ((sample === "greedy" && r[2] >= 0) || (sample === "sampled" && r[2] < 0)) continue;
      if (q && !text[i].includes(q)) continue;
      shown.push(i);
    }
    page = 0;
    draw();
  }

  function draw() {
    const start = page * PAGE, part = shown.slice(start, start + PAGE);
    $("#pf-count", root).textContent = `${shown.length} of ${rows.length} samples` +
      (shown.length ? ` (${start + 1}-${start + part.length} shown)` : "");
    $("#pf-rows", root).innerHTML = part.map((i) => {
      const r = rows[i], R = runs[r[0]], I = items[r[1]];
      const c = r[3].length > SHORT ? `${r[3].slice(0, SHORT)}…` : r[3];
      return `<tr><td>${esc(R[0])}</td><td>${esc(I[0])}</td><td><a href="#" class="pf-item" data-item="${r[1]}">${esc(I[1])}</a></td>` +
        `<td>${kind(r)}</td><td>${verdict(r)}</td><td>${esc(r[4])}</td><td>${esc(I[3])}</td><td><pre>${esc(c)}</pre></td></tr>`;
    }).join("");
    $("#pf-prev", root).disabled = page === 0;
    $("#pf-next", root).disabled = start + PAGE >= shown.length;
  }

  function showItem(k) {
    if (!byItem) {
      byItem = new Map();
      rows.forEach((r, i) => { if (!byItem.has(r[1])) byItem.set(r[1], []); byItem.get(r[1]).push(i); });
    }
    const I = items[k];
    const cards = (byItem.get(k) || []).map((i) => {
      const r = rows[i], R = runs[r[0]];
      const more = clipped(r) ? `<p class="pf-note">first ${D.clip} characters; the rest in <a href="${esc(R[4])}">${esc(R[4])}</a></p>` : "";
      return `<div class="pf-card"><h4>${esc(R[0])} · ${kind(r)}</h4><p>${verdict(r)} · answer <code>${esc(r[4])}</code>` +
        `${r[6] ? "" : " · cut at max_new_tokens"}</p><pre>${esc(r[3])}</pre>${more}</div>`;
    }).join("");
    const view = $("#pf-item", root);
    view.innerHTML = `<h3>${esc(I[0])} · item ${esc(I[1])} <button type="button" id="pf-close">close</button></h3>` +
      `<p>reference <code>${esc(I[3])}</code></p><pre class="pf-prompt">${esc(I[2])}</pre><div class="pf-cards">${cards}</div>`;
    view.hidden = false;
    $("#pf-close", view).addEventListener("click", () => { view.hidden = true; });
    view.scrollIntoView();
  }

  for (const el of $$("select, input", $(".pf-controls", root))) el.addEventListener("input", apply);
  $("#pf-prev", root).addEventListener("click", () => { page -= 1; draw(); });
  $("#pf-next", root).addEventListener("click", () => { page += 1; draw(); });
  $("#pf-rows", root).addEventListener("click", (ev) => {
    const a = ev.target.closest("a.pf-item");
    if (a) { ev.preventDefault(); showItem(Number(a.dataset.item)); }
  });
  apply();
})();
