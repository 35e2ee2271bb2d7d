// The module explorer: reads the v1 API of the server that serves it.
// Plain DOM and inline SVG; no libraries, nothing fetched from elsewhere.
"use strict";

(function () {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const TEST_IMAGES = [
    { file: "ankle-boot.png", label: "Ankle boot" },
    { file: "sneaker.png", label: "Sneaker" },
    { file: "trouser.png", label: "Trouser" },
    { file: "pullover.png", label: "Pullover" },
    { file: "bag.png", label: "Bag" },
  ];
  const TOP_K = 5;
  const JOB_POLL_MS = 500;
  const state = { detail: null, picked: [], composed: null, models: [] };

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // An SVG chart of the given user-space size, described for screen readers.
  function chart(container, width, height, label) {
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
    container.replaceChildren(root);
    return root;
  }

  function percent(x, digits = 1) {
    return (100 * x).toFixed(digits) + "%";
  }

  // Two significant digits below 1%, so a small share does not read as 0.
  function share(x) {
    return x > 0 && x < 0.01 ? (100 * x).toPrecision(2) + "%" : percent(x);
  }

  function setStatus(text, isError) {
    const s = $("status");
    s.textContent = text;
    s.classList.toggle("error", !!isError);
  }

  // JSON from the API; an error answer throws with its code and message.
  async function request(path, options) {
    const r = await fetch(path, options);
    const body = await r.json().catch(() => null);
    if (!r.ok) {
      const e = body && body.error;
      throw new Error(e && e.code ? `${e.code}: ${e.message}` : `HTTP ${r.status}`);
    }
    return body;
  }

  // ---- charts ---------------------------------------------------------------

  // Horizontal bars, one per label; values are fractions.
  function bars(container, labels, values, label, highlight) {
    const row = 22, left = 92, right = 52, width = 380;
    const height = labels.length * row + 8;
    const max = Math.max(...values, 1e-9);
    const root = chart(container, width, height, label);
    labels.forEach((name, i) => {
      const y = 4 + i * row;
      const w = ((width - left - right) * values[i]) / max;
      root.append(svg("text", { x: left - 6, y: y + 15, "text-anchor": "end" }, name));
      const bar = svg("rect", { x: left, y: y + 4, width: Math.max(w, 1), height: row - 7, rx: 2,
                                class: i === highlight ? "bar top" : "bar" });
      bar.append(svg("title", {}, `${name}: ${percent(values[i], 2)}`));
      root.append(bar);
      root.append(svg("text", { x: left + w + 5, y: y + 15 }, share(values[i])));
    });
  }

  // Blue shades from the page's background to the accent's dark end.
  function shade(t) {
    const from = [243, 246, 251], to = [15, 61, 133];
    const c = from.map((f, i) => Math.round(f + (to[i] - f) * t));
    return `rgb(${c.join(",")})`;
  }

  function heatmap(container, names, matrix) {
    const k = names.length, left = 92, top = 22, cell = Math.min(28, Math.floor(260 / k));
    const width = left + k * cell + 70, height = top + k * cell + 8;
    const max = Math.max(...matrix.flat(), 1e-9);
    const root = chart(container, width, height,
                       `Overlap of each pair of class modules; the diagonal is each module's size; the largest is ${percent(max)}`);
    for (let a = 0; a < k; a++) {
      root.append(svg("text", { x: left - 6, y: top + a * cell + cell / 2 + 4, "text-anchor": "end" }, names[a]));
      root.append(svg("text", { x: left + a * cell + cell / 2, y: top - 8, "text-anchor": "middle" }, String(a)));
      for (let b = 0; b < k; b++) {
        const v = matrix[a][b];
        const r = svg("rect", { x: left + b * cell, y: top + a * cell, width: cell - 1, height: cell - 1,
                                fill: shade(v / max) });
        r.append(svg("title", {}, a === b ? `${names[a]}: module size ${percent(v, 2)}`
                                          : `${names[a]} and ${names[b]}: ${percent(v, 2)} shared`));
        root.append(r);
      }
    }
    // The colour scale.
    const lx = left + k * cell + 14, steps = 10, h = (k * cell) / steps;
    for (let i = 0; i < steps; i++)
      root.append(svg("rect", { x: lx, y: top + i * h, width: 12, height: h + 0.5, fill: shade(1 - i / (steps - 1)) }));
    root.append(svg("text", { x: lx + 16, y: top + 9 }, percent(max)));
    root.append(svg("text", { x: lx + 16, y: top + k * cell }, "0%"));
  }

  // A curve through the layers in order, on a 0 to 100% axis.
  function curve(container, names, values) {
    const left = 46, right = 16, top = 24, bottom = 30, width = 380, height = 240;
    const plotW = width - left - right, plotH = height - top - bottom;
    const root = chart(container, width, height,
                       "Mean pair overlap per layer: " + names.map((n, i) => `${n} ${percent(values[i])}`).join(", "));
    for (const t of [0, 0.25, 0.5, 0.75, 1]) {
      const y = top + plotH * (1 - t);
      root.append(svg("line", { x1: left, x2: width - right, y1: y, y2: y, class: t ? "grid" : "axis" }));
      root.append(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "muted" }, percent(t, 0)));
    }
    const x = (i) => left + (names.length > 1 ? (plotW * i) / (names.length - 1) : plotW / 2);
    const y = (v) => top + plotH * (1 - v);
    root.append(svg("polyline", { points: values.map((v, i) => `${x(i)},${y(v)}`).join(" "), class: "curve" }));
    values.forEach((v, i) => {
      const dot = svg("circle", { cx: x(i), cy: y(v), r: 4, class: "dot" });
      dot.append(svg("title", {}, `${names[i]}: ${percent(v, 3)}`));
      root.append(dot);
      const anchor = i === 0 ? "start" : i === names.length - 1 ? "end" : "middle";
      root.append(svg("text", { x: x(i), y: height - 10, "text-anchor": anchor }, names[i]));
      root.append(svg("text", { x: x(i), y: y(v) - 9, "text-anchor": anchor, class: "muted" }, share(v)));
    });
  }

  // ---- models ---------------------------------------------------------------

  async function loadModels(select) {
    const { models } = await request("/v1/models");
    state.models = models;
    const body = $("models").tBodies[0];
    body.replaceChildren();
    for (const m of models) {
      const tr = el("tr", { "data-model": m.name });
      const name = el("td");
      const pick = el("button", { type: "button", class: "link", "aria-label": `Explore ${m.name}` }, m.name);
      pick.addEventListener("click", () => selectModel(m.name).catch(fail));
      name.append(pick);
      const arch = m.kind === "patched" ? `patched: ${m.patched.weak} + ${m.patched.strong}` : `${m.arch} ×${m.width}`;
      tr.append(name, el("td", {}, arch), el("td", { class: "num" }, String(m.num_classes)),
                el("td", { class: "num" }, percent(m.test_accuracy, 2)),
                el("td", { class: "num" }, m.kind === "patched" ? "—" : percent(m.mean_module_size, 2)),
                el("td", { class: "num" }, m.kind === "patched" ? "—" : percent(m.mean_overlap, 2)),
                el("td", { class: "num" }, m.kind === "patched" ? "—" : String(m.tau)));
      body.append(tr);
    }
    setStatus(`${models.length} model${models.length === 1 ? "" : "s"} in the registry`);
    renderReplace();
    if (models.length) await selectModel(select || models[0].name);
  }

  async function selectModel(name) {
    const d = await request("/v1/models/" + encodeURIComponent(name));
    state.detail = d;
    state.picked = [];
    state.composed = null;
    for (const tr of $("models").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.model === name);
    const names = d.classes.map((c) => c.name);
    $("model-title").textContent = `Model ${d.name}`;
    $("model-facts").textContent =
      `${d.arch} ×${d.width}, ${d.num_classes} classes, ${d.params.toLocaleString("en")} parameters, ` +
      `${(d.flops / 1e6).toFixed(2)} M multiply-adds per sample, input ${d.input.channels}×${d.input.height}×` +
      `${d.input.width}; test accuracy ${percent(d.test_accuracy, 2)}; modules at τ = ${d.tau}.`;
    const patched = d.kind === "patched";
    if (patched) {
      const p = d.patched;
      $("model-facts").textContent =
        `Patched: ${p.weak}'s class ${p.class.name} answered by ${p.strong}'s module for it (τ = ${p.tau}, ` +
        `${percent(p.module_params)} of ${p.strong}'s weights), behind a ${d.num_classes}×${d.num_classes} ` +
        `calibration layer; test accuracy ${percent(p.accuracy.patched_calibrated.overall, 2)} overall and ` +
        `${percent(p.accuracy.patched_calibrated.class, 2)} on ${p.class.name}, against ` +
        `${percent(p.accuracy.weak.overall, 2)} and ${percent(p.accuracy.weak.class, 2)} for ${p.weak}. ` +
        "A patched model has no modules of its own: it is served whole.";
    } else {
      const sizes = d.classes.map((c) => c.module_size);
      bars($("sizes"), names, sizes, "Module size per class: " +
           d.classes.map((c) => `${c.name} ${percent(c.module_size)}`).join(", "));
      heatmap($("overlap"), names, d.overlap);
      curve($("layers"), d.layers.map((l) => l.name), d.layers.map((l) => l.overlap));
      renderPicks(names);
    }
    document.querySelector("#model .charts").hidden = patched;
    renderTargets();
    $("compose-result").replaceChildren();
    $("infer-result").replaceChildren();
    for (const id of ["model", "infer", "replace"]) $(id).hidden = false;
    $("compose").hidden = patched;
  }

  // ---- replace --------------------------------------------------------------

  function fillSelect(select, values, keep) {
    const before = select.value;
    select.replaceChildren(...values.map((v) => el("option", { value: v }, v)));
    if (keep && values.includes(before)) select.value = before;
  }

  function renderReplace() {
    const names = state.models.map((m) => m.name);
    fillSelect($("weak"), names, true);
    // A module comes from a model that has modules: not a patched one.
    fillSelect($("strong"), state.models.filter((m) => m.kind !== "patched").map((m) => m.name), true);
    renderReplaceClasses();
  }

  function renderReplaceClasses() {
    const weak = state.models.find((m) => m.name === $("weak").value);
    fillSelect($("replace-class"), weak ? weak.classes : [], true);
  }

  function accuracyTable(acc, className) {
    const rows = [["weak", "weak model"], ["patched", "patched"], ["weak_calibrated", "weak model, calibrated"],
                  ["patched_calibrated", "patched, calibrated (served)"], ["baseline", "baseline (CNNSplitter)"]];
    const table = el("table", { id: "replace-accuracy" });
    table.append(el("caption", {}, "Test accuracy on the weak model's test data"));
    const head = el("tr");
    head.append(el("th", { scope: "col" }, ""), el("th", { scope: "col", class: "num" }, "overall"),
                el("th", { scope: "col", class: "num" }, `on ${className}`));
    table.append(head);
    for (const [key, label] of rows) {
      const tr = el("tr", { "data-row": key });
      tr.append(el("th", { scope: "row" }, label), el("td", { class: "num" }, percent(acc[key].overall, 2)),
                el("td", { class: "num" }, percent(acc[key].class, 2)));
      table.append(tr);
    }
    return table;
  }

  function jobProgress(j) {
    const p = j.progress;
    const box = el("div", { class: "job" });
    box.append(el("p", { id: "job-state" }, `Job ${j.id}: ${j.state}`));
    const parts = [p.phase];
    if (p.steps) parts.push(`${p.step.toLocaleString("en")} of ${p.steps.toLocaleString("en")} samples`);
    if (p.images_per_s) parts.push(`${Math.round(p.images_per_s).toLocaleString("en")} images/s`);
    if (p.epochs) parts.push(`calibration epoch ${p.epoch} of ${p.epochs}`);
    if (p.loss !== undefined) parts.push(`loss ${p.loss.toFixed(4)}`);
    if (p.eta_s !== undefined) parts.push(`about ${Math.ceil(p.eta_s)} s left`);
    box.append(el("p", { class: "help" }, parts.join(" · ")));
    if (p.steps) {
      const bar = el("progress", { max: String(p.steps), value: String(p.step), "aria-label": "samples done" });
      box.append(bar);
    }
    return box;
  }

  async function replace(event) {
    event.preventDefault();
    const button = $("replace-button");
    button.disabled = true;
    const headers = { "Content-Type": "application/json" };
    if ($("token").value) headers.Authorization = "Bearer " + $("token").value;
    const body = { weak: $("weak").value, strong: $("strong").value, class: $("replace-class").value,
                   calibration: { epochs: Number($("epochs").value) } };
    try {
      let j = await request("/v1/replace", { method: "POST", headers, body: JSON.stringify(body) });
      setStatus(`Job ${j.id} queued`);
      while (j.state === "queued" || j.state === "running") {
        $("job").replaceChildren(jobProgress(j));
        await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
        j = await request("/v1/jobs/" + encodeURIComponent(j.id));
      }
      const box = jobProgress(j);
      if (j.state === "succeeded") {
        const r = j.result;
        const p = el("p", {}, "Served as ");
        p.append(el("code", { id: "patched-model" }, r.model));
        box.append(p, accuracyTable(r.accuracy, r.class.name));
        $("job").replaceChildren(box);
        await loadModels(r.model);
        setStatus(`${r.model} is served`);
      } else {
        box.append(el("p", { class: "error" }, `${j.error.code}: ${j.error.message}`));
        $("job").replaceChildren(box);
        setStatus(`Job ${j.id} ${j.state}`, true);
      }
    } finally {
      button.disabled = false;
    }
  }

  // ---- compose --------------------------------------------------------------

  function renderPicks(names) {
    const box = $("class-picks");
    box.replaceChildren();
    names.forEach((name, i) => {
      const id = `pick-${i}`;
      const input = el("input", { type: "checkbox", id, value: String(i) });
      input.addEventListener("change", () => {
        state.picked = state.picked.filter((j) => j !== i);
        if (input.checked) state.picked.push(i);
        $("compose-button").disabled = !state.picked.length;
      });
      const label = el("label", { for: id }, " " + name);
      label.prepend(input);
      box.append(label);
    });
    $("compose-button").disabled = true;
  }

  function renderTargets(composedId) {
    const select = $("target");
    const full = state.detail.name;
    select.replaceChildren(el("option", { value: full }, `${full} (full model, all classes)`));
    if (composedId) {
      select.append(el("option", { value: composedId }, `${composedId} (composed)`));
      select.value = composedId;
    }
  }

  function ratioRow(list, name, value, text) {
    const dd = el("dd", {}, text);
    const bar = el("span", { class: "ratio", "aria-hidden": "true" });
    bar.style.width = `${Math.max(1, Math.round(160 * Math.min(value, 1)))}px`;
    dd.append(bar);
    list.append(el("dt", {}, name), dd);
  }

  async function compose(event) {
    event.preventDefault();
    const d = state.detail;
    const button = $("compose-button");
    button.disabled = true;
    try {
      const body = { model: d.name, classes: state.picked, threshold: Number($("tau").value),
                     mode: $("mode").value };
      const r = await request("/v1/compose", { method: "POST", headers: { "Content-Type": "application/json" },
                                               body: JSON.stringify(body) });
      const list = el("dl", { class: "stats", id: "compose-stats" });
      const id = el("dd");
      id.append(el("code", { id: "composed-id" }, r.id));
      list.append(el("dt", {}, "Id"), id);
      list.append(el("dt", {}, "Classes"), el("dd", {}, r.classes.map((c) => c.name).join(", ")));
      list.append(el("dt", {}, "Mode"), el("dd", { id: "compose-mode" }, r.mode));
      ratioRow(list, "Parameters", r.size_ratio,
               `${r.params.toLocaleString("en")} (${percent(r.size_ratio)} of the full model)`);
      ratioRow(list, "FLOPs", r.flops_ratio, `${percent(r.flops_ratio)} of the full model`);
      list.append(el("dt", {}, "Compose time"), el("dd", {}, `${r.compose_ms.toFixed(3)} ms`));
      list.append(el("dt", {}, "Cached"), el("dd", { id: "compose-cached" },
                                               r.cached ? "yes, composed before" : "no, composed now"));
      $("compose-result").replaceChildren(list);
      state.composed = { id: r.id, k: r.classes.length };
      renderTargets(r.id);
      setStatus(`Composed ${r.id}`);
    } finally {
      button.disabled = !state.picked.length;
    }
  }

  // ---- infer ----------------------------------------------------------------

  async function infer(blob, type, previewUrl) {
    if (type !== "image/png" && type !== "image/jpeg") throw new Error("only PNG and JPEG images can be sent");
    const model = $("target").value;
    const k = Math.min(TOP_K, state.composed && model === state.composed.id ? state.composed.k
                                                                            : state.detail.num_classes);
    const query = `id=${encodeURIComponent(model)}&top_k=${k}`;
    setStatus(`Classifying with ${model}…`);
    const r = await request("/v1/infer?" + query, { method: "POST", headers: { "Content-Type": type }, body: blob });
    const out = r.outputs[0];
    const result = el("div", { class: "result" });
    result.append(el("img", { class: "preview", src: previewUrl, alt: "the image sent" }));
    const right = el("div", { class: "chart" });
    const p = el("p", { class: "prediction", id: "prediction" }, "Predicted: ");
    p.append(el("strong", { id: "predicted-class" }, out.class),
             document.createTextNode(` (${percent(out.top_k[0].probability)}) in ${r.compute_ms.toFixed(2)} ms`));
    const chartBox = el("div");
    right.append(p, chartBox);
    result.append(right);
    $("infer-result").replaceChildren(result);
    bars(chartBox, out.top_k.map((t) => t.class), out.top_k.map((t) => t.probability),
         "Most probable classes: " + out.top_k.map((t) => `${t.class} ${percent(t.probability)}`).join(", "), 0);
    setStatus(`${model}: ${out.class}`);
  }

  function inferFile(file) {
    if (!file) return;
    infer(file, file.type, URL.createObjectURL(file)).catch(fail);
  }

  async function inferTestImage(file) {
    const url = "/ui/" + file;
    const r = await fetch(url);
    if (!r.ok) throw new Error(`HTTP ${r.status} for ${url}`);
    await infer(await r.blob(), "image/png", url);
  }

  function setUpInfer() {
    const gallery = $("gallery");
    for (const t of TEST_IMAGES) {
      const b = el("button", { type: "button", "data-image": t.file, "aria-label": `Classify the ${t.label} test image` });
      b.append(el("img", { src: "/ui/" + t.file, alt: "" }), el("span", {}, t.label));
      b.addEventListener("click", () => inferTestImage(t.file).catch(fail));
      gallery.append(b);
    }
    $("file").addEventListener("change", (e) => inferFile(e.target.files[0]));
    const drop = $("drop");
    drop.addEventListener("dragover", (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      inferFile(e.dataTransfer.files[0]);
    });
  }

  function fail(e) {
    setStatus(e.message || String(e), true);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("tau").addEventListener("input", (e) => ($("tau-value").textContent = e.target.value));
    $("compose-form").addEventListener("submit", (e) => compose(e).catch(fail));
    $("replace-form").addEventListener("submit", (e) => replace(e).catch(fail));
    $("weak").addEventListener("change", renderReplaceClasses);
    setUpInfer();
    loadModels().catch(fail);
  });
})();
