// chat.js: a session with the NPC: replies stream in, action and emotion events show as they come, the seed and
// generation settings apply to the next line, and Regenerate says the last line again.

import {$, clear, el, errorText, fmt} from "./ui.js";
import {showWhy} from "./why.js";

export const EDITOR = "__editor__"; // the persona select's value for the editor's text, saved or not

// GenerationConfig fields the page offers (ChatRequest.generation); empty means the persona's or server's default.
const SETTINGS = [
  ["seed", "seed", 1], ["temperature", "temperature", 0.05], ["maxTokens", "max tokens", 1],
  ["topP", "top p", 0.05], ["topK", "top k", 1], ["repetitionPenalty", "repetition penalty", 0.05],
  ["candidates", "best of N", 1], ["maxSentences", "max sentences", 1],
  ["sceneWordWeight", "scene word bonus", 0.5], ["absentWordWeight", "absent word penalty", 0.5],
];

export class Settings {
  constructor(defaults) {
    const box = clear($("generation"));
    for (const [key, label, step] of SETTINGS) {
      const shown = key === "seed" ? "random" : defaults[key] ?? "";
      box.append(el("label", {}, label, el("input", {id: `gen-${key}`, type: "number", step, placeholder: String(shown),
        title: key === "seed" ? "empty: a fresh random stream each line" : `empty: the persona's value or ${shown}`})));
    }
  }

  request() {
    const out = {};
    for (const [key] of SETTINGS) {
      const value = $(`gen-${key}`).value.trim();
      if (value !== "") out[key] = key === "seed" ? value : Number(value); // seed is uint64: a string in JSON
    }
    return out;
  }

  // Regenerate with a seed set moves it on by one, so the new reply is a different draw and stays reproducible.
  nextSeed() {
    const input = $("gen-seed");
    if (input.value.trim() !== "") input.value = String(BigInt(input.value.trim()) + 1n);
  }
}

export class Chat {
  constructor(rpc, scene, settings, editor) {
    this.rpc = rpc;
    this.scene = scene;
    this.settings = settings;
    this.editor = editor;
    this.sessionId = "";
    this.turns = [];
    this.busy = false;
    this.timings = []; // per sent line: {sentAt, firstTextAt, doneAt} (performance.now(); the figures read them)
    $("say").addEventListener("submit", (e) => { e.preventDefault(); this.sendLine(); });
    $("new-session").addEventListener("click", () => this.newSession().catch((err) => this.fail(err)));
    $("regenerate").addEventListener("click", () => this.regenerate().catch((err) => this.fail(err)));
  }

  fail(err) {
    $("chat-error").textContent = errorText(err);
    this.busy = false;
    $("send").disabled = false;
  }

  // The CreateSession request for a persona select's value.
  async personaSource(value) {
    if (value === EDITOR) {
      const persona = await this.editor.editorPersona();
      if (!persona) throw new Error("the editor's persona has problems: fix them first");
      return {persona};
    }
    return {personaId: value};
  }

  async newSession() {
    const session = await this.rpc.call("CreateSession", await this.personaSource($("chat-persona").value));
    this.use(session);
    return session;
  }

  use(session) {
    this.sessionId = session.sessionId;
    this.turns = [];
    clear($("transcript"));
    $("chat-error").textContent = "";
    $("session-id").textContent = session.sessionId ?
      `${session.sessionId} (${session.persona ? session.persona.name : ""})` : "no session: one is made on the first line";
    const persona = session.persona || {};
    if (persona.greeting) $("transcript").append(el("li", {class: "npc greeting"}, persona.greeting));
    for (const t of session.turns || []) this.addTurn(t.user, {text: t.reply});
    $("regenerate").disabled = !this.turns.length;
    showWhy(null);
  }

  addTurn(line, done) {
    const turn = {line, done: done || null, text: done ? done.text : ""};
    const list = $("transcript");
    turn.player = el("li", {class: "player"}, line);
    turn.npc = el("li", {class: "npc", onclick: () => this.select(turn)}, el("span", {class: "text"}, turn.text));
    turn.events = [];
    list.append(turn.player, turn.npc);
    this.turns.push(turn);
    return turn;
  }

  select(turn) {
    for (const t of this.turns) t.npc.setAttribute("aria-current", String(t === turn));
    showWhy(turn);
  }

  async sendLine() {
    const line = $("line").value.trim();
    if (!line || this.busy) return;
    $("line").value = "";
    try {
      await this.send(line);
    } catch (err) {
      this.fail(err);
    }
  }

  async send(line) {
    this.busy = true;
    $("send").disabled = true;
    $("regenerate").disabled = true;
    $("chat-error").textContent = "";
    if (!this.sessionId) await this.newSession();
    const turn = this.addTurn(line);
    const entities = this.scene.entities();
    const request = {sessionId: this.sessionId, text: line, explain: true, generation: this.settings.request(),
      ...this.scene.request()};
    const timing = {sentAt: performance.now(), firstTextAt: null, doneAt: null};
    this.timings.push(timing);
    const textNode = turn.npc.querySelector(".text");
    turn.npc.classList.add("streaming");
    try {
      const done = await this.rpc.stream("Chat", request, (event) => {
        if (event.action) {
          const a = event.action;
          const args = Object.entries(a.args || {}).map(([k, v]) => `${k}=${v}`).join(", ");
          const li = el("li", {class: "event action", "data-action": a.name},
            `⚙ action: ${a.name}${args ? ` (${args})` : ""}, confidence ${fmt(a.confidence ?? 0)}`);
          turn.npc.before(li);
          turn.events.push(li);
        } else if (event.delta) {
          if (timing.firstTextAt === null) {
            timing.firstTextAt = performance.now();
            turn.firstTextMs = timing.firstTextAt - timing.sentAt;
          }
          turn.text += event.delta.text || "";
          textNode.textContent = turn.text;
        }
      }).promise;
      timing.doneAt = performance.now();
      turn.done = done;
      textNode.textContent = done.text;
      const emotion = done.emotion || {label: "neutral", intensity: 0};
      turn.npc.append(el("span", {class: "meta"}, el("span", {class: "emotion", "data-emotion": emotion.label},
        `${emotion.label} ${fmt(emotion.intensity || 0)}`), ` · first text ${fmt(turn.firstTextMs ?? 0, 0)} ms`,
        ` · ${(done.usage && done.usage.completionTokens) || 0} tokens`));
      this.scene.showSeen(done.seen, entities);
      this.select(turn);
    } catch (err) {
      turn.player.remove();
      turn.npc.remove();
      for (const li of turn.events) li.remove();
      this.turns.pop();
      throw err;
    } finally {
      turn.npc.classList.remove("streaming");
      this.busy = false;
      $("send").disabled = false;
      $("regenerate").disabled = !this.turns.length;
    }
    return turn;
  }

  // Say the last line again: the session is exported, cut back by one turn (the studio signs the shortened
  // save game again), deleted and imported, and the line is sent anew (with the seed moved on when one is set).
  async regenerate() {
    const last = this.turns.at(-1);
    if (!last || this.busy) return;
    this.busy = true;
    try {
      const exported = await this.rpc.call("ExportSession", {sessionId: this.sessionId});
      const keep = (exported.turns || []).length - 1;
      const {snapshot} = await this.rpc.call("RewindSnapshot", {snapshot: exported, keep: Math.max(keep, 0)});
      await this.rpc.call("DeleteSession", {sessionId: this.sessionId});
      try {
        await this.rpc.call("ImportSession", snapshot);
      } catch (err) {
        await this.rpc.call("ImportSession", exported); // put the session back as it was
        throw err;
      }
    } finally {
      this.busy = false;
    }
    last.player.remove();
    last.npc.remove();
    for (const li of last.events) li.remove();
    this.turns.pop();
    this.settings.nextSeed();
    return this.send(last.line);
  }
}
