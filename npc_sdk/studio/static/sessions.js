// sessions.js: the server's sessions: list, open in the chat tab, export (a signed save game, as JSON), import,
// delete.

import {$, clear, el, download, errorText} from "./ui.js";

export class Sessions {
  constructor(rpc, chat, showTab) {
    this.rpc = rpc;
    this.chat = chat;
    this.showTab = showTab;
    $("refresh-sessions").addEventListener("click", () => this.refresh());
    $("import-session").addEventListener("change", (e) => this.importFile(e.target));
  }

  say(text) { $("sessions-state").textContent = text; }

  async refresh() {
    const sessions = [];
    let pageToken = "";
    do {
      const page = await this.rpc.call("ListSessions", {pageSize: 200, pageToken});
      sessions.push(...(page.sessions || []));
      pageToken = page.nextPageToken || "";
    } while (pageToken);
    const body = clear($("session-table").tBodies[0]);
    for (const s of sessions.reverse()) { // newest first
      const created = new Date(Number(s.createdUnixMs || 0)).toLocaleString();
      const del = el("button", {class: "quiet", "data-do": "delete"}, "Delete");
      del.addEventListener("click", () => this.remove(s.sessionId, del));
      body.append(el("tr", {"data-session": s.sessionId, "aria-current": String(s.sessionId === this.chat.sessionId)},
        el("td", {}, s.sessionId), el("td", {}, (s.persona && s.persona.name) || ""), el("td", {}, created),
        el("td", {},
          el("button", {class: "quiet", "data-do": "open", onclick: () => this.open(s.sessionId)}, "Open"), " ",
          el("button", {class: "quiet", "data-do": "export", onclick: () => this.export(s.sessionId)}, "Export"), " ",
          del)));
    }
    if (!sessions.length) body.append(el("tr", {}, el("td", {colspan: 4, class: "muted"}, "No sessions yet.")));
    return sessions;
  }

  async open(sessionId) {
    try {
      this.chat.use(await this.rpc.call("GetSession", {sessionId}));
      this.showTab("chat");
    } catch (err) { this.say(errorText(err)); }
  }

  async export(sessionId) {
    try {
      const snapshot = await this.rpc.call("ExportSession", {sessionId});
      download(`${sessionId}.npc-session.json`, JSON.stringify(snapshot, null, 2));
      this.say(`exported ${sessionId} (${(snapshot.turns || []).length} turns): a save game signed by this server`);
    } catch (err) { this.say(errorText(err)); }
  }

  async importFile(input) {
    const file = input.files[0];
    if (!file) return;
    try {
      const session = await this.rpc.call("ImportSession", JSON.parse(await file.text()));
      this.say(`imported ${session.sessionId} (${(session.turns || []).length} turns)`);
      await this.refresh();
    } catch (err) {
      this.say(`${file.name}: ${errorText(err)}`);
    } finally {
      input.value = "";
    }
  }

  // Delete asks twice: the first click arms the button for a few seconds.
  async remove(sessionId, button) {
    if (button.dataset.armed !== "1") {
      button.dataset.armed = "1";
      button.textContent = "Really delete?";
      setTimeout(() => { button.dataset.armed = ""; button.textContent = "Delete"; }, 4000);
      return;
    }
    try {
      await this.rpc.call("DeleteSession", {sessionId});
      if (sessionId === this.chat.sessionId) this.chat.use({sessionId: "", turns: []});
      this.say(`deleted ${sessionId}`);
      await this.refresh();
    } catch (err) { this.say(errorText(err)); }
  }
}
