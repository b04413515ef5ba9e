// The customer's side of a simulated Messenger: what a person writes, reacts and reads goes to
// the sandbox, which posts it to the gateway as Meta's signed webhooks; the page's replies are
// the sends the simulated Graph API accepted, polled once a second.
"use strict";

const API = "/sandbox/api/";
const REACTIONS = ["\u2764\ufe0f", "\ud83d\udc4d", "\ud83d\ude02"];
let person = null; // psid of the person written as
let shown = ""; // the thread last drawn, to redraw only on change

const $ = (id) => document.getElementById(id);

async function call(path, body) {
  const response = await fetch(API + path, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.message || `HTTP ${response.status}`);
  return answer;
}

function say(text) { $("status").textContent = text; }

async function act(work) {
  try { await work(); say(""); } catch (error) { say(error.message); }
}

async function loadState() {
  const state = await call("state");
  $("page-name").textContent = state.page.name;
  const list = $("people");
  list.replaceChildren(...state.people.map((p) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.textContent = p.name;
    button.dataset.testid = "person";
    button.dataset.psid = p.psid;
    button.setAttribute("aria-pressed", String(p.psid === person));
    button.onclick = () => choose(p.psid);
    item.append(button);
    return item;
  }));
  if (!$("fail-mode").options.length) {
    $("fail-mode").append(...state.failure_modes.map((mode) => new Option(mode, mode)));
    $("fail-mode").value = "outside_window";
  }
  showFailing(state.failing);
  if (!person && state.people.length) choose(state.people[0].psid);
}

function showFailing(failing) {
  $("failing").textContent = failing.length ? `Next replies fail: ${failing.join(", ")}` : "";
}

function choose(psid) {
  person = psid;
  shown = "";
  for (const button of document.querySelectorAll("#people button")) {
    button.setAttribute("aria-pressed", String(button.dataset.psid === psid));
  }
  refresh();
}

async function refresh() {
  if (!person) return;
  const thread = await call(`thread?psid=${encodeURIComponent(person)}`);
  showFailing(thread.failing);
  const key = JSON.stringify(thread);
  if (key === shown) return;
  shown = key;
  const box = $("thread");
  box.replaceChildren(...thread.messages.map(draw));
  const last = thread.messages.at(-1);
  if (thread.read_at && last && last.from === "page" && last.at <= thread.read_at) {
    const seen = document.createElement("div");
    seen.className = "seen";
    seen.textContent = "Seen";
    box.append(seen);
  }
  box.scrollTop = box.scrollHeight;
}

function draw(message) {
  const bubble = document.createElement("div");
  bubble.className = `message ${message.from}`;
  bubble.dataset.testid = "message";
  bubble.dataset.from = message.from;
  bubble.dataset.mid = message.mid;
  const text = document.createElement("div");
  text.textContent = message.text;
  bubble.append(text);
  if (message.from === "page") {
    const row = document.createElement("div");
    row.className = "reactions";
    for (const emoji of REACTIONS) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = emoji;
      button.dataset.testid = "react";
      button.setAttribute("aria-pressed", String(message.reaction === emoji));
      button.onclick = () => act(async () => {
        await call("reaction", { psid: person, mid: message.mid,
                                 emoji: message.reaction === emoji ? "" : emoji });
        await refresh();
      });
      row.append(button);
    }
    bubble.append(row);
  }
  return bubble;
}

$("compose").onsubmit = (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text || !person) return;
  act(async () => {
    await call("message", { psid: person, text });
    $("text").value = "";
    await refresh();
  });
};

$("read").onclick = () => act(async () => {
  await call("read", { psid: person });
  shown = "";
  await refresh();
});

$("new-person").onsubmit = (event) => {
  event.preventDefault();
  const name = $("person-name").value.trim();
  if (!name) return;
  act(async () => {
    const added = await call("people", { name });
    $("person-name").value = "";
    person = added.psid;
    await loadState();
    choose(added.psid);
  });
};

$("fail").onsubmit = (event) => {
  event.preventDefault();
  act(async () => showFailing((await call("fail", { mode: $("fail-mode").value })).failing));
};

act(loadState);
setInterval(() => refresh().catch((error) => say(error.message)), 1000);
setInterval(() => loadState().catch((error) => say(error.message)), 5000);
