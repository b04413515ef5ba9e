// The live inbox: pages, conversations, one thread and a reply box. Plain DOM, no framework.
import "./style.css";
import { AuthRequired, gql, subscribe, token } from "./api";
import {
  CONVERSATION, MESSAGE, describe, failure,
  type Channel, type Conversation, type Message,
} from "./model";

const app = document.querySelector<HTMLDivElement>("#app")!;

const state = {
  channels: [] as Channel[],
  conversations: [] as Conversation[],
  selected: null as string | null,
  messages: [] as Message[], // the open thread, oldest first
  loading: { conversations: true, thread: false },
  error: "",
};

let stopThread: (() => void) | null = null;

function h(tag: string, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElement {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

function avatar(url: string | null, name: string): HTMLElement {
  const initial = h("span", { class: "avatar placeholder" }, name.slice(0, 1).toUpperCase());
  if (!url) return initial;
  const image = h("img", { class: "avatar", src: url, alt: "" });
  image.addEventListener("error", () => image.replaceWith(initial)); // unreachable picture
  return image;
}

function showError(message: string) {
  state.error = message;
  render();
}

// --- the token screen -------------------------------------------------------------------

function askForToken(wrong: boolean) {
  const input = h("input", { type: "password", name: "token", placeholder: "API token",
                             "data-testid": "token-input" }) as HTMLInputElement;
  const form = h("form", { class: "card token" },
    h("h1", {}, "Messenger Gateway"),
    h("p", {}, wrong ? "That token was not accepted. Try again:"
                     : "This gateway needs its API token (SYSTEM_TOKEN)."),
    input, h("button", { type: "submit" }, "Open the inbox"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    token.set(input.value.trim());
    start();
  });
  app.replaceChildren(form);
  input.focus();
}

// --- loading ------------------------------------------------------------------------------

async function loadChannels() {
  const data = await gql<{ channels: Channel[] }>(
    "{ channels { id name imageUrl sourceChannelId } }");
  state.channels = data.channels;
}

async function loadConversations() {
  const data = await gql<{ conversations: { edges: { node: Conversation }[] } }>(
    `query { conversations(first: 50) { edges { node { ${CONVERSATION} } } } }`);
  state.conversations = data.conversations.edges.map((edge) => edge.node);
  state.loading.conversations = false;
}

async function openConversation(id: string) {
  state.selected = id;
  state.loading.thread = true;
  state.messages = [];
  render();
  stopThread?.();
  stopThread = followThread(id);
  try {
    const data = await gql<{ messages: { edges: { node: Message }[] } }>(
      `query ($id: ID!) { messages(conversationId: $id, first: 50) { edges { node { ${MESSAGE} } } } }`,
      { id });
    const loaded = data.messages.edges.map((edge) => edge.node).reverse();
    const live = state.messages.filter((m) => !loaded.some((l) => l.id === m.id));
    state.messages = [...loaded, ...live];
    state.loading.thread = false;
    await gql(`mutation ($id: ID!) { markConversationRead(id: $id) { id } }`, { id });
  } catch (error) {
    state.loading.thread = false;
    showError((error as Error).message);
    return;
  }
  render();
}

// --- live updates ---------------------------------------------------------------------------

function upsertMessage(message: Message) {
  if (message.conversationId !== state.selected) return;
  const index = state.messages.findIndex((m) => m.id === message.id);
  if (index >= 0) state.messages[index] = message;
  else state.messages.push(message);
  render();
}

function followThread(id: string): () => void {
  const stopCreated = subscribe<{ messageCreated: Message }>(
    `subscription ($id: ID) { messageCreated(conversationId: $id) { ${MESSAGE} } }`, { id },
    (data) => {
      upsertMessage(data.messageCreated);
      if (data.messageCreated.fromContact) {
        gql(`mutation ($id: ID!) { markConversationRead(id: $id) { id } }`, { id }).catch(() => {});
      }
    }, showError);
  const stopUpdated = subscribe<{ messageUpdated: Message }>(
    `subscription ($id: ID) { messageUpdated(conversationId: $id) { ${MESSAGE} } }`, { id },
    (data) => upsertMessage(data.messageUpdated), showError);
  return () => { stopCreated(); stopUpdated(); };
}

function followConversations() {
  subscribe<{ conversationUpdated: Conversation }>(
    `subscription { conversationUpdated { ${CONVERSATION} } }`, {},
    (data) => {
      const updated = data.conversationUpdated;
      state.conversations = [updated, ...state.conversations.filter((c) => c.id !== updated.id)]
        .sort((a, b) => b.lastActivityAt.localeCompare(a.lastActivityAt));
      render();
    }, showError);
}

// --- actions --------------------------------------------------------------------------------

async function connectPage(form: HTMLFormElement) {
  const fields = new FormData(form);
  try {
    await gql(`mutation ($input: ConnectFacebookChannelInput!) {
      connectFacebookChannel(input: $input) { id } }`, { input: {
        pageId: String(fields.get("pageId") ?? "").trim(),
        pageToken: String(fields.get("pageToken") ?? "").trim(),
        name: String(fields.get("name") ?? "").trim() || null,
      } });
    form.reset();
    await loadChannels();
    state.error = "";
  } catch (error) {
    state.error = (error as Error).message;
  }
  render();
}

async function reply(text: string) {
  if (!state.selected || !text.trim()) return;
  try {
    const data = await gql<{ sendMessage: Message }>(
      `mutation ($input: SendMessageInput!) { sendMessage(input: $input) { ${MESSAGE} } }`,
      { input: { conversationId: state.selected, message: { text } } });
    upsertMessage(data.sendMessage);
  } catch (error) {
    showError((error as Error).message);
  }
}

// --- rendering ------------------------------------------------------------------------------

function channelsPane(): HTMLElement {
  const list = state.channels.length
    ? h("ul", { class: "channels" }, ...state.channels.map((c) =>
        h("li", { "data-testid": "channel" }, avatar(c.imageUrl, c.name), h("span", {}, c.name))))
    : h("p", { class: "empty" }, "No pages connected yet. Connect one below.");
  const form = h("form", { class: "connect", "data-testid": "connect-form" },
    h("h3", {}, "Connect a page"),
    h("input", { name: "pageId", placeholder: "Page id", required: "" }),
    h("input", { name: "pageToken", placeholder: "Page access token", type: "password", required: "" }),
    h("input", { name: "name", placeholder: "Name (optional)" }),
    h("button", { type: "submit" }, "Connect")) as HTMLFormElement;
  form.addEventListener("submit", (event) => { event.preventDefault(); connectPage(form); });
  return h("aside", { class: "pane pages" }, h("h2", {}, "Pages"), list, form);
}

function conversationsPane(): HTMLElement {
  let body: HTMLElement;
  if (state.loading.conversations) body = h("p", { class: "empty" }, "Loading conversations…");
  else if (!state.conversations.length) {
    body = h("p", { class: "empty" }, "No conversations yet. They appear here, live, when people write to your pages.");
  } else {
    body = h("ul", { class: "conversations" }, ...state.conversations.map((c) => {
      const item = h("li", {
        class: c.id === state.selected ? "selected" : "",
        "data-testid": "conversation", "data-id": c.id,
      },
        avatar(c.contact.avatarUrl, c.contact.displayName),
        h("div", { class: "summary" },
          h("strong", {}, c.contact.displayName),
          h("span", { class: "preview", "data-testid": "preview" },
            c.lastMessage ? describe(c.lastMessage) : "")),
        c.unreadCount && c.id !== state.selected
          ? h("span", { class: "badge", "data-testid": "unread" }, String(c.unreadCount)) : "");
      item.addEventListener("click", () => openConversation(c.id));
      return item;
    }));
  }
  return h("section", { class: "pane list" }, h("h2", {}, "Conversations"), body);
}

function stateLabel(message: Message): HTMLElement | string {
  if (message.fromContact) return "";
  const text = message.state === "FAILED" ? `failed: ${failure(message)}` : message.state.toLowerCase();
  return h("span", { class: `state ${message.state.toLowerCase()}`, "data-testid": "state" }, text);
}

function threadPane(): HTMLElement {
  if (!state.selected) {
    return h("section", { class: "pane thread" }, h("p", { class: "empty" }, "Select a conversation."));
  }
  const conversation = state.conversations.find((c) => c.id === state.selected);
  const messages = state.loading.thread
    ? h("p", { class: "empty" }, "Loading messages…")
    : h("ol", { class: "messages" }, ...state.messages.map((m) =>
        h("li", { class: `${m.fromContact ? "in" : "out"} ${m.state.toLowerCase()}`,
                  "data-testid": "message", "data-id": m.id },
          h("span", { class: "text" }, describe(m)), stateLabel(m))));
  const input = h("input", { name: "text", placeholder: "Write a reply…", autocomplete: "off",
                             "data-testid": "reply-input" }) as HTMLInputElement;
  const form = h("form", { class: "reply" }, input,
    h("button", { type: "submit", "data-testid": "reply-send" }, "Send"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value;
    input.value = "";
    reply(text);
  });
  return h("section", { class: "pane thread" },
    h("h2", {}, conversation?.contact.displayName ?? "Conversation"), messages, form);
}

function render() {
  const focused = document.activeElement as HTMLInputElement | null;
  const keep = focused?.dataset.testid === "reply-input" ? focused.value : null;
  const banner = state.error
    ? h("div", { class: "error", role: "alert", "data-testid": "error" }, state.error) : "";
  app.replaceChildren(h("main", { class: "inbox" }, banner, channelsPane(), conversationsPane(),
                        threadPane()));
  if (keep !== null) {
    const input = app.querySelector<HTMLInputElement>("[data-testid=reply-input]");
    if (input) { input.value = keep; input.focus(); }
  }
}

async function start() {
  app.replaceChildren(h("p", { class: "empty" }, "Loading…"));
  try {
    await loadChannels();
  } catch (error) {
    if (error instanceof AuthRequired) return askForToken(Boolean(token.get()));
    app.replaceChildren(h("div", { class: "error", role: "alert" },
      `The gateway cannot be reached: ${(error as Error).message}`));
    return;
  }
  render();
  followConversations();
  try {
    await loadConversations();
  } catch (error) {
    state.loading.conversations = false;
    state.error = (error as Error).message;
  }
  render();
}

start();
