// studio.js: the page's entry point: the socket, the API key, the tabs, and the parts wired together.
// No build step: these are plain ES modules served as they are (npc_sdk/studio/static).

import {Chat, EDITOR, Settings} from "./chat.js";
import {Compare} from "./compare.js";
import {PersonaEditor} from "./persona.js";
import {Rpc} from "./rpc.js";
import {Scene} from "./scene.js";
import {Sessions} from "./sessions.js";
import {$, clear, el, errorText} from "./ui.js";

const rpc = new Rpc(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
const editor = new PersonaEditor(rpc);
const scene = new Scene(rpc);
let chat = null;
let sessions = null;

const TABS = ["persona", "chat", "compare", "sessions"];

function showTab(name) {
  if (!TABS.includes(name)) name = "persona";
  for (const b of document.querySelectorAll("#tabs button")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
  for (const s of document.querySelectorAll("main > .tab")) s.hidden = s.id !== `tab-${name}`;
  if (name === "sessions" && sessions) sessions.refresh().catch(() => {});
  if (name !== "persona") refreshPersonas().catch(() => {});
  history.replaceState(null, "", `#${name}`);
}

// Every persona select: the server's personas (what its folder loaded) and the editor's text.
async function refreshPersonas() {
  const {personas = []} = await rpc.call("ListPersonas");
  for (const select of [$("chat-persona"), ...document.querySelectorAll(".persona-choice")]) {
    const kept = select.value;
    clear(select);
    for (const p of personas) select.append(el("option", {value: p.id}, `${p.id} (${p.name})`));
    select.append(el("option", {value: EDITOR}, "the editor's text"));
    if ([...select.options].some((o) => o.value === kept)) select.value = kept;
    else if (select.id === "compare-b-persona") select.value = EDITOR; // A: the saved version, B: the editor's
  }
}

function askForKey() {
  const dialog = $("key-dialog");
  if (dialog.open) return;
  $("key-input").value = rpc.key;
  dialog.showModal();
}

async function start() {
  const info = await rpc.call("StudioInfo");
  await editor.start(info);
  scene.samples(info.scenes);
  const settings = new Settings(info.defaults);
  chat = new Chat(rpc, scene, settings, editor);
  sessions = new Sessions(rpc, chat, showTab);
  new Compare(rpc, chat);
  editor.onSaved = () => refreshPersonas().catch(() => {});
  await refreshPersonas();
  window.studio = {rpc, editor, scene, chat, sessions, showTab, info, readyAt: performance.now()};
  showTab(location.hash.slice(1)); // the tab opened before the parts existed: its content now
  document.body.dataset.ready = "1";
}

rpc.addEventListener("status", (e) => {
  const status = $("connection");
  status.textContent = e.detail === "open" ? "connected" : "reconnecting…";
  status.className = `status ${e.detail === "open" ? "ok" : "bad"}`;
});
rpc.addEventListener("unauthenticated", askForKey);
$("key-button").addEventListener("click", askForKey);
$("key-dialog").addEventListener("close", () => {
  if ($("key-dialog").returnValue !== "ok") return;
  rpc.key = $("key-input").value.trim();
  if (!window.studio) boot();
});
for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));

function boot() {
  start().catch((err) => {
    if (err.code !== "UNAUTHENTICATED") $("connection").textContent = errorText(err);
  });
}

rpc.connect();
showTab(location.hash.slice(1));
boot();
