// scene.js: what the game sends with a line besides the words: the screenshot (dropped, pasted or a sample
// scene), the scene facts and the game state; and, after a reply, the tags the NPC saw drawn over the picture.

import {$, clear, el, errorText, fmt} from "./ui.js";

const FIT = [448, 256]; // the encoder's letterbox: a picture is scaled to fit it before it is sent (docs/engines.md)

export class Scene {
  constructor(rpc) {
    this.rpc = rpc;
    this.shot = null; // {data: base64 PNG, encoding: "PNG", name}
    this.heat = null; // the grounding head's per-cell scores for the picture (the studio's TagCells)
    const drop = $("drop");
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      const file = [...e.dataTransfer.files].find((f) => f.type.startsWith("image/"));
      if (file) this.useBlob(file, file.name);
    });
    document.addEventListener("paste", (e) => {
      if (!e.clipboardData) return;
      const item = [...e.clipboardData.items].find((i) => i.type.startsWith("image/"));
      if (item) { e.preventDefault(); this.useBlob(item.getAsFile(), "pasted screenshot"); }
    });
    $("clear-picture").addEventListener("click", () => this.clearPicture());
    $("add-entity").addEventListener("click", () => this.addEntity());
    $("add-state").addEventListener("click", () => this.addState());
    $("heat-tag").addEventListener("change", () => this.drawHeat());
  }

  samples(names) {
    const box = clear($("samples"));
    for (const name of names) {
      box.append(el("button", {class: "quiet", "data-scene": name, onclick: () => this.useSample(name)},
        name.replace(/\.png$/, "").replace(/_/g, " ")));
    }
  }

  async useSample(name) {
    const response = await fetch(`/scenes/${encodeURIComponent(name)}`);
    await this.useBlob(await response.blob(), name);
  }

  // Any picture: scaled to fit the encoder's canvas (never up), sent as PNG.
  async useBlob(blob, name) {
    const image = await createImageBitmap(blob);
    const scale = Math.min(1, FIT[0] / image.width, FIT[1] / image.height);
    const canvas = el("canvas", {width: Math.round(image.width * scale), height: Math.round(image.height * scale)});
    canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
    const url = canvas.toDataURL("image/png");
    this.shot = {data: url.split(",")[1], encoding: "PNG", name};
    $("picture-img").src = url;
    $("picture").hidden = false;
    $("clear-picture").hidden = false;
    $("drop").textContent = `${name} (${canvas.width}x${canvas.height}): sent with the next line`;
    clear($("picture-tags"));
    await this.loadHeat(this.shot);
  }

  // The head's per-cell scores for this picture: the heat map's choices, the likeliest tag drawn first.
  async loadHeat(shot) {
    this.heat = null;
    this.drawHeat();
    $("heat-row").hidden = true;
    $("heat-note").textContent = "";
    let answer;
    try {
      answer = await this.rpc.call("TagCells", {data: shot.data});
    } catch (err) {
      answer = {available: false, why: `no heat map: ${errorText(err)}`};
    }
    if (shot !== this.shot) return; // another picture was picked meanwhile
    if (!answer.available) {
      $("heat-note").textContent = answer.why;
      return;
    }
    this.heat = answer;
    const select = clear($("heat-tag"));
    select.append(el("option", {value: ""}, "no heat map"));
    const tags = Object.entries(answer.tags).sort((a, b) => b[1].score - a[1].score);
    for (const [tag, t] of tags) select.append(el("option", {value: tag}, `${tag} (${fmt(t.score)})`));
    select.value = tags.length ? tags[0][0] : "";
    $("heat-row").hidden = false;
    this.drawHeat();
  }

  // Each cell of the encoder's letterbox shaded by the chosen tag's score there, over the picture.
  drawHeat() {
    const canvas = $("picture-heat");
    const img = $("picture-img");
    const tag = this.heat && $("heat-tag").value;
    for (const chip of $("picture-tags").querySelectorAll(".legend .tag")) {
      chip.setAttribute("aria-pressed", String(chip.dataset.tag === tag));
    }
    canvas.width = img.naturalWidth || 1;
    canvas.height = img.naturalHeight || 1;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!tag || !this.heat.tags[tag]) return;
    const {rows, cols, canvas: [cw, ch], box: [x0, y0, x1, y1]} = this.heat;
    const sx = canvas.width / (x1 - x0);
    const sy = canvas.height / (y1 - y0);
    const cells = this.heat.tags[tag].cells;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const p = cells[r * cols + c];
        if (p < 0.05) continue;
        ctx.fillStyle = `rgba(255, 80, 0, ${(0.55 * p).toFixed(3)})`;
        ctx.fillRect((c * cw / cols - x0) * sx, (r * ch / rows - y0) * sy, (cw / cols) * sx, (ch / rows) * sy);
      }
    }
  }

  clearPicture() {
    this.shot = null;
    this.heat = null;
    this.drawHeat();
    $("heat-row").hidden = true;
    $("picture").hidden = true;
    $("clear-picture").hidden = true;
    $("drop").textContent = "Drop or paste a screenshot here, or pick a sample scene";
  }

  addEntity(values = {}) {
    const cell = (key, type = "text") => el("td", {}, el("input", {"data-key": key, type, value: values[key] ?? "",
      step: type === "number" ? "any" : undefined, min: type === "number" ? "0" : undefined}));
    const row = el("tr", {}, cell("tag"), cell("name"), cell("x", "number"), cell("y", "number"),
      cell("distance", "number"), el("td", {}, el("button", {class: "remove", title: "remove",
        onclick: () => row.remove()}, "×")));
    $("scene-table").tBodies[0].append(row);
  }

  addState(key = "", value = "") {
    const row = el("tr", {}, el("td", {}, el("input", {"data-key": "key", value: key})),
      el("td", {}, el("input", {"data-key": "value", value})),
      el("td", {}, el("button", {class: "remove", title: "remove", onclick: () => row.remove()}, "×")));
    $("state-table").tBodies[0].append(row);
  }

  entities() {
    const out = [];
    for (const row of $("scene-table").tBodies[0].rows) {
      const get = (k) => row.querySelector(`[data-key="${k}"]`).value.trim();
      if (!get("tag")) continue;
      const entity = {tag: get("tag")};
      if (get("name")) entity.name = get("name");
      for (const k of ["x", "y", "distance"]) if (get(k) !== "") entity[k] = Number(get(k));
      out.push(entity);
    }
    return out;
  }

  state() {
    const out = {};
    for (const row of $("state-table").tBodies[0].rows) {
      const key = row.querySelector('[data-key="key"]').value.trim();
      const value = row.querySelector('[data-key="value"]').value.trim();
      if (key) out[key] = value;
    }
    return out;
  }

  // The ChatRequest fields this part fills.
  request() {
    const out = {scene: this.entities(), state: this.state()};
    if (this.shot) out.screenshot = {data: this.shot.data, encoding: this.shot.encoding};
    return out;
  }

  // What the NPC saw (Done.seen), drawn over the picture: every tag with its score, and the game's entities
  // that have a screen position at that position. The grounding head scores the whole picture, so the
  // screenshot's tags are listed rather than placed.
  showSeen(seen, entities) {
    const layer = clear($("picture-tags"));
    if (!seen || !seen.length) return;
    const legend = el("div", {class: "legend"});
    for (const s of seen) {
      const heat = this.heat && this.heat.tags[s.tag];
      legend.append(el("span", {class: `tag ${s.source}`, "data-tag": s.tag, role: heat ? "button" : undefined,
        title: heat ? `source: ${s.source}; click: its heat map` : `source: ${s.source}`,
        onclick: heat ? () => { $("heat-tag").value = s.tag; this.drawHeat(); } : undefined},
      el("b", {}, s.tag), " ", fmt(s.score ?? 0)));
    }
    layer.append(legend);
    this.drawHeat();
    for (const e of entities || []) {
      if (e.x === undefined || e.y === undefined) continue;
      layer.append(el("span", {class: "tag game marker", style: {left: `${e.x * 100}%`, top: `${e.y * 100}%`},
        "data-tag": e.tag}, e.name || e.tag));
    }
  }
}
