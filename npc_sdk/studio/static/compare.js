// compare.js: two persona versions, or two seeds, side by side on the same lines. Each side gets a fresh
// session; the chat tab's screenshot, scene, state and generation settings apply to both.

import {$, clear, el, errorText} from "./ui.js";

export class Compare {
  constructor(rpc, chat) {
    this.rpc = rpc;
    this.chat = chat;
    $("compare-run").addEventListener("click", () => this.run());
  }

  side(letter) {
    return {persona: $(`compare-${letter}-persona`).value, seed: $(`compare-${letter}-seed`).value.trim()};
  }

  async run() {
    const lines = $("compare-lines").value.split("\n").map((l) => l.trim()).filter(Boolean);
    const body = clear($("compare-table").tBodies[0]);
    const cells = lines.map((line) => {
      const row = el("tr", {}, el("td", {}, line), el("td", {class: "a"}, "…"), el("td", {class: "b"}, "…"));
      body.append(row);
      return {a: row.cells[1], b: row.cells[2]};
    });
    $("compare-run").disabled = true;
    try {
      // both sides at once: the server decodes their turns in one batch
      await Promise.all(["a", "b"].map((letter) => this.runSide(letter, lines, cells.map((c) => c[letter]))));
    } finally {
      $("compare-run").disabled = false;
    }
  }

  async runSide(letter, lines, cells) {
    const side = this.side(letter);
    try {
      const session = await this.rpc.call("CreateSession", await this.chat.personaSource(side.persona));
      const extra = this.chat.scene.request();
      for (let i = 0; i < lines.length; i++) {
        const generation = {...this.chat.settings.request()};
        if (side.seed !== "") generation.seed = side.seed;
        let text = "";
        const done = await this.rpc.stream("Chat", {sessionId: session.sessionId, text: lines[i], generation, ...extra},
          (event) => {
            if (event.action) cells[i].dataset.action = event.action.name;
            if (event.delta) { text += event.delta.text || ""; cells[i].textContent = text; }
          }).promise;
        cells[i].textContent = done.text;
        if (cells[i].dataset.action) cells[i].append(el("div", {class: "small muted"}, `action: ${cells[i].dataset.action}`));
      }
    } catch (err) {
      for (const cell of cells) if (cell.textContent === "…") cell.textContent = errorText(err);
    }
  }
}
