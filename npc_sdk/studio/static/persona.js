// persona.js: the persona editor. Open a file of the persona folder, see the validator's problems at their line
// as you type, the prompt it renders with its token counts, and save: the server's hot reload picks it up.

import {$, bar, canonical, clear, el, errorText} from "./ui.js";

const CHECK_AFTER_MS = 250; // typing pause before the text is checked and rendered
const RELOAD_WAIT_MS = 20000; // how long the page waits to see the server reload a saved file (it polls each second)
const TEMPLATE = (name) => `# Every field: docs/personas.md
name = "${name}"
description = "Who they are and where, in a sentence or two."
personality = "three or four traits"
greeting = "Their first line."

[role_words]  # words the NPC leans towards: word = logit bonus
`;

export class PersonaEditor {
  constructor(rpc) {
    this.rpc = rpc;
    this.file = null; // {name, editable, saved}
    this.timer = 0;
    this.checked = 0; // a counter: only the newest check's answer is shown
    this.problems = [];
    this.onSaved = () => {};
    const source = $("source");
    source.addEventListener("input", () => this.changed());
    source.addEventListener("scroll", () => { $("gutter").scrollTop = source.scrollTop; });
    source.addEventListener("keydown", (e) => {
      if ((e.ctrlKey || e.metaKey) && e.key === "s") { e.preventDefault(); this.save(); }
    });
    $("save-file").addEventListener("click", () => this.save());
    $("save-as").addEventListener("click", () => this.saveAs());
    $("new-file").addEventListener("click", () => this.create());
    $("render-line").addEventListener("input", () => this.schedule());
  }

  get text() { return $("source").value; }

  async start(info) {
    $("folder-path").textContent = info.personasDir;
    const files = await this.listFiles();
    const first = files.find((f) => f.editable) || files[0];
    if (first && !this.file) await this.open(first.name);
  }

  async listFiles() {
    const {files = []} = await this.rpc.call("ListFiles");
    const list = clear($("file-list"));
    for (const f of files) {
      list.append(el("li", {}, el("button", {
        "aria-current": this.file && this.file.name === f.name ? "true" : "false",
        "data-name": f.name,
        onclick: () => this.open(f.name),
      }, f.name, el("span", {class: "kind"}, f.editable ? f.kind : `${f.kind}, read only`))));
    }
    return files;
  }

  async open(name) {
    const file = await this.rpc.call("ReadFile", {name});
    this.file = {name, editable: file.editable, saved: file.text};
    const source = $("source");
    source.value = file.text;
    source.disabled = false;
    source.readOnly = !file.editable;
    $("file-name").textContent = name;
    $("save-file").disabled = !file.editable;
    $("save-as").disabled = false;
    $("reload-state").textContent = file.editable ? "" :
      "A card picture or archive: shown as the TOML it reads as. Save as… writes that TOML to a new file.";
    for (const b of $("file-list").querySelectorAll("button")) b.setAttribute("aria-current", String(b.dataset.name === name));
    this.changed();
  }

  changed() {
    this.gutter();
    if (this.file) $("file-state").textContent = this.text === this.file.saved ? "" : "edited, not saved";
    this.schedule();
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.check(), CHECK_AFTER_MS);
  }

  gutter() {
    const lines = this.text.split("\n").length;
    const bad = new Set(this.problems.map((p) => p.line).filter((n) => n > 0));
    const gutter = clear($("gutter"));
    for (let n = 1; n <= lines; n++) {
      gutter.append(el("div", {class: bad.has(n) ? "bad" : undefined, "data-line": n, title: bad.has(n) ?
        this.problems.filter((p) => p.line === n).map((p) => p.text).join("\n") : undefined}, n));
    }
    gutter.scrollTop = $("source").scrollTop;
  }

  // The validator's problems for the text as it stands, then the prompt it renders.
  async check() {
    if (!this.file) return;
    const ticket = ++this.checked;
    const name = this.file.name;
    const text = this.file.editable ? this.text : undefined;
    try {
      const found = await this.rpc.call("CheckFile", {name, text});
      if (ticket !== this.checked) return;
      this.showProblems(found.problems, found.persona);
      if (found.persona) await this.render(ticket, name, text);
    } catch (err) {
      if (ticket === this.checked) this.showProblems([{line: 0, text: errorText(err)}], null);
    }
  }

  showProblems(problems, persona) {
    this.problems = problems;
    this.gutter();
    const list = clear($("problems"));
    if (!problems.length) {
      list.append(el("li", {class: "ok"}, persona ? `valid: persona ${persona.id} (${persona.name})` : "valid"));
      return;
    }
    for (const p of problems) {
      list.append(el("li", {"data-line": p.line, onclick: () => this.goTo(p.line)}, p.text));
    }
  }

  goTo(line) {
    if (!line) return;
    const source = $("source");
    const lines = this.text.split("\n");
    const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
    source.focus();
    source.setSelectionRange(start, start + (lines[line - 1] || "").length);
    source.scrollTop = Math.max(0, (line - 5) * 20);
  }

  async render(ticket, name, text) {
    const line = $("render-line").value || "What is that over there?";
    const answer = await this.rpc.call("RenderPrompt", {name, text, line});
    if (ticket !== this.checked || !answer.rendered) return;
    const r = answer.rendered;
    const budgets = clear($("budgets"));
    const row = (label, used, budget) => budgets.append(el("div", {class: "budget"},
      `${label}: ${used} of ${budget} tokens`, bar(used, budget)));
    row("Persona block (system message and greeting)", r.personaTokens, r.personaBudget);
    row("Lore this line fires", r.loreTokens, r.loreBudget);
    row(`Whole prompt (the reply keeps ${r.replyTokens} of the ${r.contextBudget + r.replyTokens})`, r.positions, r.contextBudget);
    for (const t of r.trimmed) budgets.append(el("div", {class: "budget error"}, `trimmed to fit: ${t}`));
    for (const hit of r.lore) {
      budgets.append(el("div", {class: "budget"}, "lore ", el("b", {}, hit.name || `#${hit.index}`), " fired by ",
        hit.keys.length ? hit.keys.map((k) => el("span", {class: "key"}, k)) : hit.why));
    }
    $("render-note").textContent = r.note || "(nothing: no lore fires for this line)";
    $("render-prompt").textContent = r.prompt;
  }

  async save() {
    if (!this.file || !this.file.editable) return;
    const {name} = this.file;
    const text = this.text;
    $("reload-state").textContent = "saving…";
    try {
      const saved = await this.rpc.call("SaveFile", {name, text, overwrite: true});
      this.file.saved = text;
      $("file-state").textContent = "saved";
      this.showProblems(saved.problems, saved.persona);
      if (saved.persona) await this.waitForReload(name, text, saved.persona.id);
      else $("reload-state").textContent = "Saved with problems: the server keeps the last version that loaded.";
      this.onSaved();
    } catch (err) {
      $("reload-state").textContent = errorText(err);
    }
  }

  // Saved: ask the server for the persona until it holds what was saved (its folder is polled every second).
  async waitForReload(name, text, id) {
    $("reload-state").textContent = `saved; waiting for the server to reload ${id}…`;
    const want = await this.rpc.call("PersonaJson", {name, text});
    const deadline = performance.now() + RELOAD_WAIT_MS;
    while (performance.now() < deadline) {
      try {
        const live = await this.rpc.call("GetPersona", {id});
        if (canonical(live) === canonical(want.persona)) {
          $("reload-state").textContent = `The server reloaded ${id}: new sessions use this version.`;
          return true;
        }
      } catch (err) { /* not loaded yet */ }
      await new Promise((r) => setTimeout(r, 300));
    }
    $("reload-state").textContent = `Saved, but the server has not reloaded ${id} yet (is --personas this folder?).`;
    return false;
  }

  async saveAs() {
    if (!this.file) return;
    const stem = this.file.name.replace(/\.[^.]+$/, "");
    const name = prompt("Save as (a new file in the persona folder):", `${stem}_copy.toml`);
    if (!name) return;
    try {
      await this.rpc.call("SaveFile", {name, text: this.text, overwrite: false});
      await this.listFiles();
      await this.open(name);
      this.onSaved();
    } catch (err) {
      $("reload-state").textContent = errorText(err);
    }
  }

  async create() {
    const name = prompt("New persona file (in the persona folder):", "new_npc.toml");
    if (!name) return;
    const display = name.replace(/\.[^.]+$/, "").replace(/_/g, " ");
    try {
      await this.rpc.call("SaveFile", {name, text: TEMPLATE(display), overwrite: false});
      await this.listFiles();
      await this.open(name);
    } catch (err) {
      $("reload-state").textContent = errorText(err);
    }
  }

  // The persona in the editor, as the Persona message CreateSession takes (null when it does not load).
  async editorPersona() {
    if (!this.file) return null;
    const answer = await this.rpc.call("PersonaJson", {name: this.file.name, text: this.file.editable ? this.text : undefined});
    return answer.persona || null;
  }
}

