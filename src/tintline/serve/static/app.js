// tintline web page: load line art, draw hints (kept as vectors in input-image pixels), colorize via the API.
// Plain JS, no build step, nothing fetched from outside this server.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const SWATCHES = ["#e8433a", "#f59f2c", "#f7d84a", "#5cb85c", "#3a8ee8", "#8e5ce8", "#f2b8c6", "#8a5a3c"];

  const el = {
    model: $("model"), modelDesc: $("model-desc"), file: $("file"), openBtn: $("open-btn"), openBtn2: $("open-btn2"),
    color: $("color"), swatches: $("swatches"), size: $("size"), sizeOut: $("size-out"),
    undo: $("undo-btn"), clear: $("clear-btn"), saveHints: $("save-hints-btn"), loadHints: $("load-hints-btn"),
    hintsFile: $("hints-file"), useHints: $("use-hints"), softHints: $("soft-hints"), detail: $("detail"),
    propagate: $("propagate"),
    colorize: $("colorize-btn"), layers: $("layers-btn"),
    drop: $("drop"), dropMsg: $("drop-msg"), stage: $("stage"), inputImg: $("input-img"), canvas: $("hint-canvas"),
    inputInfo: $("input-info"), resultImg: $("result-img"), resultMsg: $("result-msg"), resultInfo: $("result-info"),
    download: $("download"), compareSection: $("compare-section"), cmpBefore: $("cmp-before"),
    cmpAfter: $("cmp-after"), compare: $("compare"), cmpLine: $("cmp-line"), cmpSlider: $("cmp-slider"),
    status: $("status"),
    help: $("help"),
    charPanel: $("character-panel"), character: $("character"), charInfo: $("character-info"),
    charRefs: $("character-refs"),
  };

  const state = {
    file: null,        // the original Blob: uploaded as is, so the result is full size
    name: "image",
    width: 0, height: 0,
    tool: "dot",
    items: [],         // hints in image pixels: {type: "point", x, y, color, radius} | {type: "stroke", points, color, width}
    undo: [],          // snapshots of items
    drawing: null,     // the stroke being drawn
    erasing: null,     // {before: items JSON, changed} while the eraser is down
    cursor: null,      // last pointer position in image pixels (for the brush ring)
    inputUrl: null, resultUrl: null,
    busy: false,
    characters: {},    // model name -> {name, references} for the character models
  };

  // ---------------------------------------------------------------------------------------------- status

  function setStatus(msg, kind = "") {
    el.status.textContent = msg;
    el.status.className = "status " + kind;
  }

  function setPageState(s) { document.body.dataset.state = s; }

  // ---------------------------------------------------------------------------------------------- models

  async function loadModels() {
    try {
      const r = await fetch("/api/models");
      const data = await r.json();
      el.model.replaceChildren();
      state.characters = {};
      for (const m of data.models) {
        const o = document.createElement("option");
        o.value = m.name;
        o.textContent = m.name + (m.default ? " (default)" : "");
        o.dataset.description = m.description;
        if (m.default) o.selected = true;
        el.model.append(o);
        if (m.character) state.characters[m.name] = m.character;
      }
      buildCharacterPanel();
      showModelDesc();
    } catch (e) {
      setStatus("Could not list the models: " + e, "error");
    }
  }

  function showModelDesc() {
    const o = el.model.selectedOptions[0];
    el.modelDesc.textContent = o ? o.dataset.description : "";
    syncCharacter();
  }

  // The Character panel: the character models the server was started with; picking one selects it as the model
  // and shows its references (what it learned the colors from).
  function buildCharacterPanel() {
    const names = Object.keys(state.characters);
    el.charPanel.hidden = names.length === 0;
    el.character.replaceChildren();
    const none = document.createElement("option");
    none.value = "";
    none.textContent = "(none: the selected model)";
    el.character.append(none);
    for (const name of names) {
      const o = document.createElement("option");
      o.value = name;
      o.textContent = state.characters[name].name;
      el.character.append(o);
    }
  }

  function syncCharacter() {
    const name = el.model.value;
    const c = state.characters[name];
    el.character.value = c ? name : "";
    el.charRefs.replaceChildren();
    el.charInfo.textContent = c ? `${c.references} reference${c.references === 1 ? "" : "s"}; colors it without hints` : "";
    if (!c) return;
    for (let i = 0; i < c.references; i++) {
      const img = document.createElement("img");
      img.src = `/api/models/${encodeURIComponent(name)}/references/${i}`;
      img.alt = `${c.name}: reference ${i + 1}`;
      img.title = img.alt;
      el.charRefs.append(img);
    }
  }

  function pickCharacter() {
    const name = el.character.value;
    if (name) el.model.value = name;
    else if (state.characters[el.model.value]) {
      // back to a model that is not a character: the default one
      const d = [...el.model.options].find((o) => !state.characters[o.value]);
      if (d) el.model.value = d.value;
    }
    showModelDesc();
  }

  // ---------------------------------------------------------------------------------------------- image input

  function baseName(name) {
    const n = (name || "image").replace(/\.[^.]*$/, "");
    return n.replace(/[^\w.-]+/g, "_").slice(0, 80) || "image";
  }

  function loadImageFile(file) {
    if (!file) return;
    const url = URL.createObjectURL(file);
    const probe = new Image();
    probe.onload = () => {
      if (state.inputUrl) URL.revokeObjectURL(state.inputUrl);
      state.inputUrl = url;
      state.file = file;
      state.name = baseName(file.name);
      state.width = probe.naturalWidth;
      state.height = probe.naturalHeight;
      state.items = [];
      state.undo = [];
      el.inputImg.src = url;
      el.cmpBefore.src = url;
      el.stage.hidden = false;
      el.dropMsg.hidden = true;
      el.colorize.disabled = el.layers.disabled = false;
      clearResult();
      el.inputImg.decode().catch(() => {}).then(layout);
      setStatus(`Loaded ${file.name || "pasted image"} (${state.width}×${state.height}). Draw hints, then colorize.`);
      setPageState("loaded");
    };
    probe.onerror = () => {
      URL.revokeObjectURL(url);
      setStatus(`${file.name || "That file"} is not an image this browser can show.`, "error");
    };
    probe.src = url;
  }

  function clearResult() {
    if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
    state.resultUrl = null;
    el.resultImg.hidden = true;
    el.resultImg.removeAttribute("src");
    el.resultMsg.hidden = false;
    el.resultInfo.textContent = "";
    el.download.hidden = true;
    el.compareSection.hidden = true;
  }

  function scale() { return el.canvas.clientWidth / state.width || 1; }  // screen px per image px

  // Preview boxes get explicit CSS sizes (the image's aspect, fitted to the room there is), so the hint canvas and
  // the before/after pair lie exactly over their images at any scale.
  function fit(maxW, maxH) {
    const k = Math.min(1, maxW / state.width, maxH / state.height);
    return [Math.max(1, Math.floor(state.width * k)), Math.max(1, Math.floor(state.height * k))];
  }

  function layout() {
    if (!state.width) return;
    const maxH = Math.max(200, window.innerHeight * 0.72);
    const [w, h] = fit(el.drop.clientWidth - 4, maxH);
    el.stage.style.width = `${w}px`;
    el.stage.style.height = `${h}px`;
    const [cw, ch] = fit(Math.min(el.compareSection.clientWidth || el.drop.clientWidth, 900), maxH);
    el.compare.style.width = `${cw}px`;
    el.compare.style.height = `${ch}px`;
    resizeCanvas();
    updateInfo();
  }

  function updateInfo() {
    if (!state.width) return;
    const pct = Math.round(scale() * 100);
    const n = state.items.length;
    el.inputInfo.textContent = `${state.width}×${state.height} px, preview ${pct}%, ${n} hint${n === 1 ? "" : "s"}`;
  }

  // ---------------------------------------------------------------------------------------------- hint canvas

  function resizeCanvas() {
    if (!state.width) return;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(el.canvas.clientWidth * dpr));
    const h = Math.max(1, Math.round(el.canvas.clientHeight * dpr));
    if (el.canvas.width !== w || el.canvas.height !== h) {
      el.canvas.width = w;
      el.canvas.height = h;
    }
    redraw();
  }

  function redraw() {
    const ctx = el.canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, el.canvas.width, el.canvas.height);
    if (!state.width) return;
    const k = el.canvas.width / state.width;  // backing-store px per image px
    ctx.setTransform(k, 0, 0, k, 0, 0);
    const all = state.drawing ? state.items.concat([state.drawing]) : state.items;
    for (const it of all) {
      ctx.fillStyle = ctx.strokeStyle = it.color;
      if (it.type === "point") {
        ctx.beginPath();
        ctx.arc(it.x, it.y, it.radius, 0, 2 * Math.PI);
        ctx.fill();
      } else {
        ctx.lineWidth = it.width;
        ctx.lineCap = ctx.lineJoin = "round";
        ctx.beginPath();
        ctx.moveTo(it.points[0][0], it.points[0][1]);
        for (const [x, y] of it.points.slice(1)) ctx.lineTo(x, y);
        if (it.points.length === 1) ctx.lineTo(it.points[0][0] + 0.01, it.points[0][1]);
        ctx.stroke();
      }
    }
    if (state.cursor) {  // brush ring
      const r = brushImagePx() / 2;
      ctx.lineWidth = 1.5 / k;
      ctx.strokeStyle = state.tool === "eraser" ? "#000" : el.color.value;
      ctx.setLineDash([4 / k, 3 / k]);
      ctx.beginPath();
      ctx.arc(state.cursor[0], state.cursor[1], r, 0, 2 * Math.PI);
      ctx.stroke();
      ctx.setLineDash([]);
    }
  }

  function brushImagePx() { return Number(el.size.value) / scale(); }  // brush diameter in image pixels

  const round1 = (v) => Math.round(v * 10) / 10;

  function toImage(ev) {
    const r = el.canvas.getBoundingClientRect();
    const x = (ev.clientX - r.left) / r.width * state.width;
    const y = (ev.clientY - r.top) / r.height * state.height;
    return [round1(Math.min(Math.max(x, 0), state.width - 1)), round1(Math.min(Math.max(y, 0), state.height - 1))];
  }

  function snapshot() {
    state.undo.push(JSON.stringify(state.items));
    if (state.undo.length > 200) state.undo.shift();
  }

  function undo() {
    if (!state.undo.length) return setStatus("Nothing to undo.");
    state.items = JSON.parse(state.undo.pop());
    redraw();
    updateInfo();
  }

  function clearHints() {
    if (!state.items.length) return;
    snapshot();
    state.items = [];
    redraw();
    updateInfo();
  }

  function distToSegment(px, py, a, b) {
    const dx = b[0] - a[0], dy = b[1] - a[1];
    const len2 = dx * dx + dy * dy;
    const t = len2 ? Math.max(0, Math.min(1, ((px - a[0]) * dx + (py - a[1]) * dy) / len2)) : 0;
    return Math.hypot(px - (a[0] + t * dx), py - (a[1] + t * dy));
  }

  function eraseAt(x, y) {
    const r = brushImagePx() / 2;
    const before = state.items.length;
    state.items = state.items.filter((it) => {
      if (it.type === "point") return Math.hypot(it.x - x, it.y - y) > r + it.radius;
      const pts = it.points.length === 1 ? [it.points[0], it.points[0]] : it.points;
      for (let i = 1; i < pts.length; i++) if (distToSegment(x, y, pts[i - 1], pts[i]) <= r + it.width / 2) return false;
      return true;
    });
    return state.items.length !== before;
  }

  function onPointerDown(ev) {
    if (!state.width || ev.button !== 0) return;
    ev.preventDefault();
    el.canvas.setPointerCapture(ev.pointerId);
    const [x, y] = toImage(ev);
    const d = round1(brushImagePx());
    if (state.tool === "dot") {
      snapshot();
      state.items.push({type: "point", x, y, color: el.color.value, radius: Math.max(0.5, round1(d / 2))});
    } else if (state.tool === "stroke") {
      snapshot();
      state.drawing = {type: "stroke", points: [[x, y]], color: el.color.value, width: Math.max(0.5, d)};
    } else {
      state.erasing = {before: JSON.stringify(state.items), changed: eraseAt(x, y)};
    }
    redraw();
    updateInfo();
  }

  function onPointerMove(ev) {
    if (!state.width) return;
    const [x, y] = toImage(ev);
    state.cursor = [x, y];
    if (state.drawing) {
      const last = state.drawing.points[state.drawing.points.length - 1];
      if (Math.hypot(x - last[0], y - last[1]) * scale() >= 2) state.drawing.points.push([x, y]);
    } else if (state.erasing) {
      if (eraseAt(x, y)) state.erasing.changed = true;
      updateInfo();
    }
    redraw();
  }

  function onPointerUp() {
    if (state.drawing) {
      state.items.push(state.drawing);
      state.drawing = null;
    }
    if (state.erasing && state.erasing.changed) {  // one undo step per erasing drag
      state.undo.push(state.erasing.before);
    }
    state.erasing = null;
    redraw();
    updateInfo();
  }

  function setTool(tool) {
    state.tool = tool;
    for (const b of document.querySelectorAll(".tool")) {
      const on = b.dataset.tool === tool;
      b.classList.toggle("active", on);
      b.setAttribute("aria-pressed", String(on));
    }
    el.canvas.dataset.tool = tool;
    redraw();
  }

  // ---------------------------------------------------------------------------------------------- hints JSON

  function hintsJson() {
    const out = {points: [], strokes: []};
    for (const it of state.items) {
      if (it.type === "point") out.points.push({x: it.x, y: it.y, color: it.color, radius: it.radius});
      else out.strokes.push({points: it.points, color: it.color, width: it.width});
    }
    return out;
  }

  function saveHints() {
    if (!state.items.length) return setStatus("No hints to save yet.");
    const blob = new Blob([JSON.stringify(hintsJson(), null, 1)], {type: "application/json"});
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `${state.name}.hints.json`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 5000);
    setStatus(`Saved ${state.items.length} hints as ${a.download} (coordinates in image pixels).`);
  }

  const HEX = /^#?[0-9a-fA-F]{6}$/;
  const num = (v) => typeof v === "number" && Number.isFinite(v);
  const hex = (c) => (c.startsWith("#") ? c : "#" + c).toLowerCase();

  function parseHints(obj) {
    if (!obj || typeof obj !== "object" || Array.isArray(obj)) throw new Error("expected an object with points/strokes");
    const items = [];
    for (const [i, p] of (obj.points || []).entries()) {
      if (!p || !num(p.x) || !num(p.y) || typeof p.color !== "string" || !HEX.test(p.color)) {
        throw new Error(`points[${i}] is not {x, y, color: '#rrggbb', radius}`);
      }
      items.push({type: "point", x: p.x, y: p.y, color: hex(p.color), radius: num(p.radius) ? p.radius : 3});
    }
    for (const [i, s] of (obj.strokes || []).entries()) {
      const ok = s && Array.isArray(s.points) && s.points.length && typeof s.color === "string" && HEX.test(s.color) &&
        s.points.every((xy) => Array.isArray(xy) && xy.length === 2 && num(xy[0]) && num(xy[1]));
      if (!ok) throw new Error(`strokes[${i}] is not {points: [[x, y], ...], color: '#rrggbb', width}`);
      items.push({type: "stroke", points: s.points, color: hex(s.color), width: num(s.width) ? s.width : 4});
    }
    return items;
  }

  function loadHintsFile(file) {
    if (!file) return;
    file.text().then((text) => {
      const items = parseHints(JSON.parse(text));
      snapshot();
      state.items = items;
      redraw();
      updateInfo();
      setStatus(`Loaded ${items.length} hints from ${file.name}.`);
    }).catch((e) => setStatus(`Could not load hints from ${file.name}: ${e.message}`, "error"));
  }

  // ---------------------------------------------------------------------------------------------- colorize

  function setBusy(on) {
    state.busy = on;
    el.colorize.disabled = el.layers.disabled = on || !state.file;
  }

  // The request for the current drawing, hints, model and switches; layers: answer an OpenRaster file, not a PNG.
  // Returns the fetch Response (ok) or throws an Error with the server's one-line message.
  async function postColorize(layers) {
    const useHints = el.useHints.checked && state.items.length > 0;
    const form = new FormData();
    form.append("image", state.file, state.file.name || "image.png");
    if (useHints) form.append("hints", JSON.stringify(hintsJson()));
    if (el.model.value) form.append("model", el.model.value);
    form.append("soft_hints", el.softHints.checked ? "true" : "false");
    form.append("detail", el.detail.value);
    form.append("propagate", el.propagate.checked ? "true" : "false");
    if (layers) form.append("layers", "true");
    const r = await fetch("/api/colorize", {method: "POST", body: form});
    if (!r.ok) {
      let msg = `${r.status} ${r.statusText}`;
      try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
      const retry = r.headers.get("Retry-After");
      throw new Error(msg + (retry ? ` (retry in ${retry} s)` : ""));
    }
    return r;
  }

  function describeRequest() {
    const useHints = el.useHints.checked && state.items.length > 0;
    return `${el.model.value}${useHints ? ` and ${state.items.length} hints` : ", no hints"}` +
      (el.softHints.checked ? ", soft hints" : "") + (el.propagate.checked ? "" : ", no propagation") +
      (el.detail.value !== "auto" ? `, ${el.detail.value} detail` : "");
  }

  async function colorize() {
    if (!state.file) return setStatus("Open some line art first.", "error");
    if (state.busy) return;
    setBusy(true);
    setPageState("busy");
    setStatus(`Colorizing with ${describeRequest()}…`);
    const t0 = performance.now();
    try {
      const r = await postColorize(false);
      const blob = await r.blob();
      const secs = ((performance.now() - t0) / 1000).toFixed(2);
      if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
      state.resultUrl = URL.createObjectURL(blob);
      el.resultImg.src = state.resultUrl;
      await el.resultImg.decode().catch(() => {});
      el.resultImg.hidden = false;
      el.resultMsg.hidden = true;
      el.cmpAfter.src = state.resultUrl;
      el.compareSection.hidden = false;
      layout();
      setCompare(Number(el.cmpSlider.value));
      el.download.href = state.resultUrl;
      el.download.download = `${state.name}-colorized.png`;
      el.download.hidden = false;
      el.resultInfo.textContent = `${el.resultImg.naturalWidth}×${el.resultImg.naturalHeight} px, ${secs} s, ` +
        `${r.headers.get("X-Tintline-Model") || el.model.value}`;
      setStatus(`Done in ${secs} s.`, "ok");
      setPageState("done");
    } catch (e) {
      setStatus(`Colorize failed: ${e.message}`, "error");
      setPageState("error");
    } finally {
      setBusy(false);
    }
  }

  // Colorize again, asking for the layers, and download them: <name>-colorized.ora (lines and shading multiply
  // over flat colors), for Krita, GIMP or MyPaint. The result shown on the page stays as it is.
  async function downloadLayers() {
    if (!state.file) return setStatus("Open some line art first.", "error");
    if (state.busy) return;
    setBusy(true);
    setStatus(`Making the layers with ${describeRequest()}…`);
    try {
      const r = await postColorize(true);
      const blob = await r.blob();
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = `${state.name}-colorized.ora`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 5000);
      setStatus(`Saved ${a.download}: layers lines, shading (multiply) and flat colors.`, "ok");
    } catch (e) {
      setStatus(`Download layers failed: ${e.message}`, "error");
    } finally {
      setBusy(false);
    }
  }

  function setCompare(v) {
    el.cmpAfter.style.clipPath = `inset(0 ${100 - v}% 0 0)`;
    el.cmpLine.style.left = `${v}%`;
  }

  function downloadResult() {
    if (!state.resultUrl) return setStatus("Colorize first; then the result can be downloaded.");
    el.download.click();
  }

  // ---------------------------------------------------------------------------------------------- wiring

  function pickSwatch(i) {
    if (SWATCHES[i]) el.color.value = SWATCHES[i];
    redraw();
  }

  function buildSwatches() {
    SWATCHES.forEach((c, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "swatch";
      b.title = `${c} (${i + 1})`;
      b.setAttribute("aria-label", `color ${c}`);
      b.style.backgroundColor = c;
      b.addEventListener("click", () => pickSwatch(i));
      el.swatches.append(b);
    });
  }

  function imageFromItems(items) {
    for (const it of items) {
      if (it.kind === "file" && it.type.startsWith("image/")) return it.getAsFile();
    }
    return null;
  }

  function onKey(ev) {
    const t = ev.target;
    if (t && (t.tagName === "SELECT" || (t.tagName === "INPUT" && !["range", "checkbox", "color"].includes(t.type)))) {
      return;
    }
    const ctrl = ev.ctrlKey || ev.metaKey;
    const k = ev.key;
    if (ctrl && (k === "z" || k === "Z")) { ev.preventDefault(); undo(); return; }
    if (ctrl && k === "Enter") { ev.preventDefault(); colorize(); return; }
    if (ctrl && (k === "s" || k === "S")) { ev.preventDefault(); downloadResult(); return; }
    if (ctrl || ev.altKey) return;
    if (ev.shiftKey && (k === "s" || k === "S")) { ev.preventDefault(); downloadLayers(); return; }
    const actions = {
      o: () => el.file.click(), d: () => setTool("dot"), s: () => setTool("stroke"), e: () => setTool("eraser"),
      c: colorize, x: clearHints,
      h: saveHints, l: () => el.hintsFile.click(), z: undo,
      b: () => { el.cmpSlider.value = Number(el.cmpSlider.value) > 50 ? 0 : 100; setCompare(Number(el.cmpSlider.value)); },
      m: () => { const n = el.model.options.length; if (n) { el.model.selectedIndex = (el.model.selectedIndex + 1) % n; showModelDesc(); } },
      "[": () => { el.size.value = Math.max(2, Number(el.size.value) - 2); el.sizeOut.value = el.size.value; redraw(); },
      "]": () => { el.size.value = Math.min(80, Number(el.size.value) + 2); el.sizeOut.value = el.size.value; redraw(); },
      "?": () => { el.help.hidden = !el.help.hidden; },
    };
    const fn = actions[k.toLowerCase()] || (/^[1-8]$/.test(k) ? () => pickSwatch(Number(k) - 1) : null);
    if (fn) { ev.preventDefault(); fn(); }
  }

  function init() {
    buildSwatches();
    loadModels();
    el.model.addEventListener("change", showModelDesc);
    el.character.addEventListener("change", pickCharacter);
    el.openBtn.addEventListener("click", () => el.file.click());
    el.openBtn2.addEventListener("click", () => el.file.click());
    el.file.addEventListener("change", () => { loadImageFile(el.file.files[0]); el.file.value = ""; });
    el.hintsFile.addEventListener("change", () => { loadHintsFile(el.hintsFile.files[0]); el.hintsFile.value = ""; });
    el.loadHints.addEventListener("click", () => el.hintsFile.click());
    el.saveHints.addEventListener("click", saveHints);
    el.undo.addEventListener("click", undo);
    el.clear.addEventListener("click", clearHints);
    el.colorize.addEventListener("click", colorize);
    el.layers.addEventListener("click", downloadLayers);
    el.size.addEventListener("input", () => { el.sizeOut.value = el.size.value; redraw(); });
    el.color.addEventListener("input", redraw);
    for (const b of document.querySelectorAll(".tool")) b.addEventListener("click", () => setTool(b.dataset.tool));
    el.cmpSlider.addEventListener("input", () => setCompare(Number(el.cmpSlider.value)));

    el.canvas.addEventListener("pointerdown", onPointerDown);
    el.canvas.addEventListener("pointermove", onPointerMove);
    el.canvas.addEventListener("pointerup", onPointerUp);
    el.canvas.addEventListener("pointercancel", onPointerUp);
    el.canvas.addEventListener("pointerleave", () => { state.cursor = null; redraw(); });
    new ResizeObserver(layout).observe(el.drop);
    window.addEventListener("resize", layout);

    // drag-and-drop anywhere on the page, paste from the clipboard
    document.addEventListener("dragover", (ev) => { ev.preventDefault(); el.drop.classList.add("dragging"); });
    document.addEventListener("dragleave", () => el.drop.classList.remove("dragging"));
    document.addEventListener("drop", (ev) => {
      ev.preventDefault();
      el.drop.classList.remove("dragging");
      const f = ev.dataTransfer && ev.dataTransfer.files[0];
      if (f && /json$/i.test(f.type || f.name)) loadHintsFile(f);
      else if (f) loadImageFile(f);
    });
    document.addEventListener("paste", (ev) => {
      const f = ev.clipboardData && imageFromItems(ev.clipboardData.items);
      if (f) { ev.preventDefault(); loadImageFile(f); }
    });
    document.addEventListener("keydown", onKey);
    setTool("dot");
    setCompare(50);
  }

  init();
})();
