// why.js: the "why this reply" panel: what went into a turn's prompt and sampler (Done.explanation), with the
// best-of-N candidates, what the NPC saw, and the turn's figures.

import {$, bar, clear, el, fmt} from "./ui.js";

const WORDS_SHOWN = 24;

function section(title, ...body) {
  return el("section", {"data-part": title.toLowerCase().split(" ")[0]}, el("h3", {}, title), ...body);
}

function note(text, empty) {
  return text ? el("pre", {class: "small"}, text.trim()) : el("p", {class: "muted small"}, empty);
}

function lore(hits) {
  if (!hits.length) return note("", "No lore entry fired.");
  return el("table", {}, hits.map((h) => el("tr", {"data-lore": h.index},
    el("td", {}, el("b", {}, h.name || `lore[${h.index}]`), el("br"),
      h.keys.length ? h.keys.map((k) => el("span", {class: "key"}, k)) : el("span", {class: "pill"}, h.why),
      h.why === "recursion" ? el("span", {class: "pill"}, "through other lore") : null),
    el("td", {class: "small"}, h.text))));
}

function history(why) {
  const shown = why.historyTurns || 0;
  const from = why.historyStart || 0;
  const plural = (n) => (n === 1 ? "turn" : "turns");
  const line = from ? `The prompt shows turns ${from + 1}–${from + shown}; the ${from} oldest ${plural(from)} ` +
    "were left out to fit the context." : shown ? `The prompt shows all ${shown} earlier ${plural(shown)}.` :
    "No earlier turns.";
  const recalled = (why.recalledTurns || []).map((i) => i + 1);
  return [el("p", {class: "small"}, line),
    why.memoryNote ? el("p", {class: "small"}, `Recalled from ${plural(recalled.length)} ${recalled.join(", ")}:`) : null,
    why.memoryNote ? note(why.memoryNote) : null];
}

function action(decision) {
  if (!decision) return note("", "The persona declares no actions.");
  const rows = [];
  if (decision.name) {
    rows.push(el("tr", {}, el("td", {}, "fired"), el("td", {}, el("b", {"data-action": decision.name}, decision.name)),
      el("td", {class: "num"}, fmt(decision.score))));
  } else {
    rows.push(el("tr", {}, el("td", {}, "fired"), el("td", {class: "muted"}, "none"), el("td")));
  }
  rows.push(el("tr", {}, el("td", {}, "needs"), el("td", {class: "small"},
    `similarity ≥ ${fmt(decision.threshold)}, request ≥ ${fmt(decision.requestThreshold)}`),
    el("td", {class: "num"}, fmt(decision.request ?? 0))));
  const best = decision.bestRejected;
  if (best) {
    rows.push(el("tr", {}, el("td", {}, "best not fired"), el("td", {}, el("b", {}, best.name), el("br"),
      el("span", {class: "small muted"}, best.reason)), el("td", {class: "num"}, fmt(best.score ?? 0))));
  }
  return el("table", {}, rows);
}

function words(list) {
  if (!list.length) return note("", "No word is biased.");
  const table = (rows) => el("table", {}, rows.slice(0, WORDS_SHOWN).map((w) => el("tr", {}, el("td", {}, w.word),
    el("td", {}, el("span", {class: `pill ${w.source}`}, w.source)), el("td", {class: "num"}, fmt(w.weight, 1)))));
  const up = list.filter((w) => w.source !== "absent");
  const down = list.filter((w) => w.source === "absent");
  return [
    up.length ? table(up) : null,
    up.length > WORDS_SHOWN ? el("p", {class: "muted small"}, `and ${up.length - WORDS_SHOWN} more`) : null,
    down.length ? el("p", {class: "small"}, el("span", {class: "pill absent"}, "absent"),
      ` pushed down by ${fmt(-down[0].weight, 1)} (surely not in view): `, down.map((w) => w.word).join(", ")) : null,
  ];
}

function emotions(scores, chosen) {
  if (!scores.length) return note("", chosen ? `${chosen.label} ${fmt(chosen.intensity)}` : "none");
  return el("table", {}, scores.map((e) => el("tr", {}, el("td", {}, e.label), el("td", {}, bar(e.intensity || 0, 1)),
    el("td", {class: "num"}, fmt(e.intensity || 0)))));
}

function candidates(list) {
  if (!list || list.length < 2) return null;
  return section("Candidates (best of N)", el("table", {}, list.map((c, i) => el("tr", {},
    el("td", {}, i === 0 ? el("b", {}, c.text) : c.text, c.failed && c.failed.length ?
      el("div", {class: "small muted"}, `broke: ${c.failed.join(", ")}`) : null),
    el("td", {class: "num"}, fmt(c.score ?? 0))))));
}

function seen(list) {
  if (!list || !list.length) return note("", "Nothing in view: no screenshot and no scene facts.");
  return el("table", {}, list.map((s) => el("tr", {}, el("td", {}, s.tag), el("td", {class: "small muted"}, s.source),
    el("td", {class: "num"}, fmt(s.score ?? 0)))));
}

// Fill the panel for one turn: {line, done, firstTextMs}.
export function showWhy(turn) {
  const panel = clear($("why"));
  panel.append(el("h2", {}, "Why this reply"));
  if (!turn || !turn.done) {
    panel.append(el("p", {class: "muted"}, "Pick a reply to see what went into it."));
    return;
  }
  const done = turn.done;
  const why = done.explanation;
  panel.append(el("p", {class: "small"}, "“", turn.line, "” → “", done.text, "”"));
  if (!why) {
    panel.append(el("p", {class: "muted"}, done.replayed ? "A replayed turn: the stored reply, not generated again." :
      "This turn was not asked to explain itself (a turn loaded from a stored session)."));
    return;
  }
  const usage = done.usage || {};
  const timings = done.timings || {};
  panel.append(
    section("Lore that fired", lore(why.lore || [])),
    section("Memory and history", ...history(why)),
    section("Scene", note(why.sceneNote, "No scene note."), seen(done.seen)),
    section("Game state", note(why.stateNote, "No game state.")),
    section("Action", action(why.action), why.actionNote ? note(why.actionNote) : null),
    section("Biased words", words(why.biasedWords || [])),
    section("Emotion", emotions(why.emotionScores || [], done.emotion)),
    candidates(done.candidates),
    section("Figures", el("table", {},
      el("tr", {}, el("td", {}, "prompt / cached / reply tokens"),
        el("td", {class: "num"}, `${usage.promptTokens || 0} / ${usage.cachedTokens || 0} / ${usage.completionTokens || 0}`)),
      el("tr", {}, el("td", {}, "first token (server)"), el("td", {class: "num"}, `${fmt(timings.ttftMs || 0, 0)} ms`)),
      turn.firstTextMs !== undefined ? el("tr", {}, el("td", {}, "first text on this page"),
        el("td", {class: "num"}, `${fmt(turn.firstTextMs, 0)} ms`)) : null,
      el("tr", {}, el("td", {}, "decode"), el("td", {class: "num"}, `${fmt(timings.decodeTokensPerSecond || 0, 1)} tok/s`)))),
    section("Told before the line", note(why.context, "Nothing.")),
  );
}
