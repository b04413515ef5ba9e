// The live inbox: pages, conversations, one thread and a reply box. Plain DOM, no framework.
import "./style.css";
import { AuthRequired, gql, subscribe, token, uploadAttachment, watchLink } from "./api";
import {
  CONVERSATION, MESSAGE, TAG, TAG_COLORS, describe, exactly, failure, newestFirst, oldestFirst, when,
  type Channel, type Conversation, type Message, type Page, type Tag, type TagColor,
} from "./model";

const app = document.querySelector<HTMLDivElement>("#app")!;
const linkBanner = document.querySelector<HTMLDivElement>("#link")!;
const confirmDialog = document.querySelector<HTMLDialogElement>("#confirm")!;

const CONVERSATIONS_PAGE = 50;
const MESSAGES_PAGE = 25; // a thread opens on its newest messages; older ones load on demand

const state = {
  channels: [] as Channel[],
  conversations: [] as Conversation[], // as filtered, newest activity first
  tags: [] as Tag[],
  filter: { unread: false, name: "" },
  open: null as Conversation | null, // the conversation whose thread is shown
  messages: [] as Message[], // its thread, oldest first
  older: null as string | null, // the cursor of the page before the oldest loaded; null: all loaded
  loading: { conversations: true, thread: false, older: false },
  error: "",
};

// How the next render places the thread: at its end (opened, or followed while at the end), or
// where the reader was once older messages are put above.
let threadScroll: "end" | "keep-from-end" | null = null;
let stopThread: (() => void) | null = null;

function h(tag: string, attrs: Record<string, string | false | undefined> = {},
           ...children: (Node | string)[]): HTMLElement {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== false && value !== undefined) node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function button(label: Node | string, attrs: Record<string, string | false | undefined>,
                onClick: () => void): HTMLElement {
  const node = h("button", { type: "button", ...attrs }, label);
  node.addEventListener("click", onClick);
  return node;
}

function avatar(url: string | null, name: string): HTMLElement {
  const initial = h("span", { class: "avatar placeholder", "aria-hidden": "true" },
                    name.slice(0, 1).toUpperCase());
  if (!url) return initial;
  const image = h("img", { class: "avatar", src: url, alt: "" });
  image.addEventListener("error", () => image.replaceWith(initial)); // unreachable picture
  return image;
}

function time(iso: string, testid: string): HTMLElement {
  return h("time", { datetime: new Date(iso).toISOString(), title: exactly(iso),
                     "data-testid": testid }, when(iso));
}

function tagChip(tag: Tag, onRemove?: () => void): HTMLElement {
  const chip = h("span", { class: `tag ${tag.color.toLowerCase()}`, "data-testid": "tag" }, tag.name);
  if (onRemove) {
    chip.append(button("×", { class: "untag", "aria-label": `Remove the tag ${tag.name}`,
                               "data-testid": "untag" }, onRemove));
  }
  return chip;
}

function showError(message: string) {
  state.error = message;
  render();
}

function failed(error: unknown) {
  showError((error as Error).message);
}

// --- the token screen -------------------------------------------------------------------

function askForToken(wrong: boolean) {
  const input = h("input", {
    type: "password", name: "token", placeholder: "API token", "aria-label": "API token",
    "data-testid": "token-input",
  }) as HTMLInputElement;
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

async function loadTags() {
  const data = await gql<{ tags: Tag[] }>(`{ tags { ${TAG} } }`);
  state.tags = data.tags;
}

/** Whether a conversation belongs in the filtered list; the open one stays while it is read. */
function shown(conversation: Conversation): boolean {
  const name = state.filter.name.trim().toLowerCase();
  if (name && !conversation.contact.displayName.toLowerCase().includes(name)) return false;
  return !state.filter.unread || conversation.unreadCount > 0 || conversation.id === state.open?.id;
}

let listAsked = 0; // only the answer to the latest question fills the list (search as you type)

async function loadConversations() {
  const asked = ++listAsked;
  const name = state.filter.name.trim();
  const filter = state.filter.unread || name
    ? { ...(state.filter.unread ? { unread: true } : {}), ...(name ? { displayName: name } : {}) }
    : null;
  const data = await gql<{ conversations: Page<Conversation> }>(
    `query ($first: Int!, $filter: ConversationFilterInput) {
      conversations(first: $first, filter: $filter) { edges { node { ${CONVERSATION} } } } }`,
    { first: CONVERSATIONS_PAGE, filter });
  if (asked !== listAsked) return;
  const found = nodes(data.conversations);
  const open = state.open;
  const fresh = found.find((c) => c.id === open?.id);
  if (fresh) state.open = fresh;
  else if (open && shown(open)) found.push(open);
  state.conversations = found.sort(newestFirst);
  state.loading.conversations = false;
}

async function loadMessages(id: string, after: string | null): Promise<Page<Message>> {
  const data = await gql<{ messages: Page<Message> }>(
    `query ($id: ID!, $first: Int!, $after: String) {
      messages(conversationId: $id, first: $first, after: $after) {
        edges { node { ${MESSAGE} } } pageInfo { hasNextPage endCursor } } }`,
    { id, first: MESSAGES_PAGE, after });
  return data.messages;
}

function nodes<T>(page: Page<T>): T[] {
  return page.edges.map((edge) => edge.node);
}

/** Put the newest page of the open thread in with what is shown; when more than a page was
 * missed (while the websocket was down), start over from it rather than leave a hole. */
function mergeNewest(page: Page<Message>) {
  const loaded = nodes(page);
  const missed = page.pageInfo.hasNextPage
    && !loaded.some((m) => state.messages.some((s) => s.id === m.id));
  if (!missed) {
    for (const message of loaded) upsertMessage(message);
    return;
  }
  state.messages = loaded.sort(oldestFirst);
  state.older = page.pageInfo.endCursor;
}

async function openConversation(conversation: Conversation) {
  const id = conversation.id;
  state.open = conversation;
  state.messages = [];
  state.older = null;
  state.loading.thread = true;
  state.loading.older = false;
  render();
  stopThread?.();
  stopThread = followThread(id);
  try {
    const page = await loadMessages(id, null);
    if (state.open?.id !== id) return; // another one was opened meanwhile
    for (const message of nodes(page)) upsertMessage(message); // to what arrived live meanwhile
    state.older = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
    state.loading.thread = false;
    threadScroll = "end";
    render();
    await markRead(id);
  } catch (error) {
    state.loading.thread = false;
    failed(error);
  }
}

async function loadOlder() {
  const id = state.open?.id;
  if (!id || !state.older || state.loading.older) return;
  state.loading.older = true;
  render();
  try {
    const page = await loadMessages(id, state.older);
    if (state.open?.id !== id) return; // another one was opened, and loads afresh
    const older = nodes(page).filter((m) => !state.messages.some((s) => s.id === m.id));
    state.messages = [...older, ...state.messages].sort(oldestFirst);
    state.older = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
    threadScroll = "keep-from-end";
  } catch (error) {
    state.error = (error as Error).message;
  }
  state.loading.older = false;
  render();
}

async function markRead(id: string) {
  const data = await gql<{ markConversationRead: Conversation }>(
    `mutation ($id: ID!) { markConversationRead(id: $id) { ${CONVERSATION} } }`, { id });
  upsertConversation(data.markConversationRead);
  render();
}

/** After the websocket was lost: whatever happened meanwhile is fetched, not waited for. */
async function refresh() {
  try {
    await Promise.all([loadChannels(), loadTags(), loadConversations()]);
    const id = state.open?.id;
    if (id) {
      const page = await loadMessages(id, null);
      if (state.open?.id === id) mergeNewest(page);
      if (state.open?.unreadCount) await markRead(id);
    }
  } catch (error) {
    state.error = (error as Error).message;
  }
  render();
}

// --- live updates ---------------------------------------------------------------------------

/** A message in the open thread. What was fetched or answered by a mutation may be older than
 * what arrived live meanwhile: it never takes a settled message back to pending. */
function upsertMessage(message: Message, live = false) {
  if (message.conversationId !== state.open?.id) return;
  const index = state.messages.findIndex((m) => m.id === message.id);
  if (index < 0) state.messages = [...state.messages, message].sort(oldestFirst);
  else if (live || message.state !== "PENDING" || state.messages[index].state === "PENDING") {
    state.messages[index] = message;
  }
}

function upsertConversation(conversation: Conversation) {
  if (conversation.id === state.open?.id) state.open = conversation;
  const others = state.conversations.filter((c) => c.id !== conversation.id);
  state.conversations = shown(conversation) ? [conversation, ...others].sort(newestFirst) : others;
}

type ChannelState = NonNullable<Conversation["channel"]>;

/** A page renamed or disconnected: its conversations say so, and its thread takes no reply. */
function patchChannel(channel: ChannelState) {
  const patch = (c: Conversation) => c.channel?.id === channel.id ? { ...c, channel } : c;
  state.conversations = state.conversations.map(patch);
  if (state.open) state.open = patch(state.open);
}

function followThread(id: string): () => void {
  const stopCreated = subscribe<{ messageCreated: Message }>(
    `subscription ($id: ID) { messageCreated(conversationId: $id) { ${MESSAGE} } }`, { id },
    (data) => {
      upsertMessage(data.messageCreated, true);
      render();
      if (data.messageCreated.fromContact) markRead(id).catch(() => {});
    }, showError);
  const stopUpdated = subscribe<{ messageUpdated: Message }>(
    `subscription ($id: ID) { messageUpdated(conversationId: $id) { ${MESSAGE} } }`, { id },
    (data) => { upsertMessage(data.messageUpdated, true); render(); }, showError);
  return () => { stopCreated(); stopUpdated(); };
}

function followConversations() {
  subscribe<{ conversationUpdated: Conversation }>(
    `subscription { conversationUpdated { ${CONVERSATION} } }`, {},
    (data) => { upsertConversation(data.conversationUpdated); render(); }, showError);
  subscribe<{ channelUpdated: ChannelState }>(
    "subscription { channelUpdated { id name connected } }", {},
    (data) => {
      patchChannel(data.channelUpdated);
      loadChannels().then(render, failed);
    }, showError);
}

let linkTimer: ReturnType<typeof setTimeout> | undefined;

function followLink() {
  watchLink((link) => {
    clearTimeout(linkTimer);
    linkBanner.hidden = false;
    linkBanner.className = `link ${link}`;
    if (link === "lost") {
      linkBanner.textContent = "Reconnecting… Live updates are paused.";
      return;
    }
    linkBanner.textContent = "Live again.";
    linkTimer = setTimeout(() => { linkBanner.hidden = true; }, 3000);
    refresh();
  });
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

/** Ask before something that cannot be undone from here; true when the person confirms. */
function confirmed(title: string, text: string, action: string): Promise<boolean> {
  confirmDialog.querySelector("#confirm-title")!.textContent = title;
  confirmDialog.querySelector("#confirm-text")!.textContent = text;
  confirmDialog.querySelector("[value=yes]")!.textContent = action;
  confirmDialog.returnValue = "";
  confirmDialog.showModal();
  return new Promise((resolve) => confirmDialog.addEventListener(
    "close", () => resolve(confirmDialog.returnValue === "yes"), { once: true }));
}

async function disconnectPage(channel: Channel) {
  const sure = await confirmed(`Disconnect ${channel.name}?`,
    "Messages to this page stop arriving here and replies can no longer be sent. "
    + "Its conversations stay; connect the page again to go on.", "Disconnect");
  if (!sure) return;
  try {
    const data = await gql<{ disconnectChannel: ChannelState }>(
      `mutation ($id: ID!) { disconnectChannel(id: $id) { id name connected } }`, { id: channel.id });
    patchChannel(data.disconnectChannel);
    await loadChannels();
    state.error = "";
  } catch (error) {
    state.error = (error as Error).message;
  }
  render();
}

async function reply(text: string, file?: File) {
  if (!state.open || (!text.trim() && !file)) return;
  const conversationId = state.open.id;
  try {
    // A file goes up first and is sent as its own message, then the text.
    const messages: Record<string, string>[] =
      file ? [{ attachmentId: await uploadAttachment(file) }] : [];
    if (text.trim()) messages.push({ text });
    for (const message of messages) {
      const data = await gql<{ sendMessage: Message }>(
        `mutation ($input: SendMessageInput!) { sendMessage(input: $input) { ${MESSAGE} } }`,
        { input: { conversationId, message } });
      upsertMessage(data.sendMessage);
    }
    threadScroll = "end";
    render();
  } catch (error) {
    failed(error);
  }
}

async function resend(message: Message) {
  // Pending from now on: its answer may come after the live news of the new attempt.
  upsertMessage({ ...message, state: "PENDING" }, true);
  render();
  try {
    await gql(`mutation ($id: ID!) { resendMessage(id: $id) { id } }`, { id: message.id });
  } catch (error) {
    upsertMessage(message, true);
    failed(error);
  }
}

async function addTag(name: string, color: TagColor) {
  const id = state.open?.id;
  if (!id || !name) return;
  try {
    let tag = state.tags.find((t) => t.name.toLowerCase() === name.toLowerCase());
    if (!tag) {
      const data = await gql<{ createTag: Tag }>(
        `mutation ($input: CreateTagInput!) { createTag(input: $input) { ${TAG} } }`,
        { input: { name, color } });
      tag = data.createTag;
      state.tags = [...state.tags, tag].sort((a, b) => a.name.localeCompare(b.name));
    }
    const data = await gql<{ tagConversation: Conversation }>(
      `mutation ($id: ID!, $tag: ID!) { tagConversation(conversationId: $id, tagId: $tag) {
        ${CONVERSATION} } }`, { id, tag: tag.id });
    upsertConversation(data.tagConversation);
    render();
  } catch (error) {
    failed(error);
  }
}

async function removeTag(tag: Tag) {
  const id = state.open?.id;
  if (!id) return;
  try {
    const data = await gql<{ untagConversation: Conversation }>(
      `mutation ($id: ID!, $tag: ID!) { untagConversation(conversationId: $id, tagId: $tag) {
        ${CONVERSATION} } }`, { id, tag: tag.id });
    upsertConversation(data.untagConversation);
    render();
  } catch (error) {
    failed(error);
  }
}

let searchTimer: ReturnType<typeof setTimeout> | undefined;

function search(name: string) {
  state.filter.name = name;
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => loadConversations().then(render, failed), 250);
}

function toggleUnread() {
  state.filter.unread = !state.filter.unread;
  loadConversations().then(render, failed);
}

// --- rendering ------------------------------------------------------------------------------

function channelsPane(): HTMLElement {
  const list = state.channels.length
    ? h("ul", { class: "channels" }, ...state.channels.map((c) =>
        h("li", { "data-testid": "channel" }, avatar(c.imageUrl, c.name),
          h("span", { class: "name" }, c.name),
          button("Disconnect", { id: `disconnect-${c.id}`, class: "quiet",
                                 "aria-label": `Disconnect ${c.name}`, "data-testid": "disconnect" },
                 () => disconnectPage(c)))))
    : h("p", { class: "empty" }, "No pages connected yet. Connect one below.");
  const form = h("form", { class: "connect", "data-testid": "connect-form" },
    h("h3", {}, "Connect a page"),
    h("input", { id: "page-id", name: "pageId", placeholder: "Page id", "aria-label": "Page id",
                 required: "" }),
    h("input", { id: "page-token", name: "pageToken", placeholder: "Page access token",
                 "aria-label": "Page access token", type: "password", required: "" }),
    h("input", { id: "page-name", name: "name", placeholder: "Name (optional)",
                 "aria-label": "Name (optional)" }),
    h("button", { type: "submit" }, "Connect")) as HTMLFormElement;
  form.addEventListener("submit", (event) => { event.preventDefault(); connectPage(form); });
  return h("aside", { class: "pane pages", id: "pages-pane", "aria-label": "Pages" },
    h("h2", {}, "Pages"), list, form);
}

function conversationItem(c: Conversation): HTMLElement {
  const open = c.id === state.open?.id;
  const unread = c.unreadCount > 0 && !open;
  const summary = h("span", { class: "summary" },
    h("span", { class: "top" },
      h("strong", { class: "name" }, c.contact.displayName),
      time(c.lastActivityAt, "conversation-time")),
    h("span", { class: "preview", "data-testid": "preview" },
      c.lastMessage ? describe(c.lastMessage) : ""),
    c.tags.length ? h("span", { class: "tags" }, ...c.tags.map((t) => tagChip(t))) : "");
  const badge = unread
    ? h("span", {}, h("span", { class: "badge", "data-testid": "unread" }, String(c.unreadCount)),
        h("span", { class: "sr-only" }, " unread"))
    : "";
  return h("li", { class: [open ? "selected" : "", unread ? "unread" : ""].join(" ").trim(),
                   "data-testid": "conversation", "data-id": c.id },
    button(h("span", { class: "row" }, avatar(c.contact.avatarUrl, c.contact.displayName), summary,
             badge),
           { id: `conversation-${c.id}`, class: "open", "aria-current": open ? "true" : false },
           () => openConversation(c)));
}

function conversationsPane(): HTMLElement {
  const searchBox = h("input", {
    id: "search", type: "search", placeholder: "Search by name", value: state.filter.name,
    "aria-label": "Search conversations by name", "data-testid": "search", autocomplete: "off",
  }) as HTMLInputElement;
  searchBox.addEventListener("input", () => search(searchBox.value));
  const tools = h("div", { class: "tools", role: "search" }, searchBox,
    button("Unread", { id: "filter-unread", class: "toggle", "aria-pressed": String(state.filter.unread),
                       "data-testid": "filter-unread" }, toggleUnread));
  let body: HTMLElement;
  const filtered = state.filter.unread || state.filter.name.trim();
  if (state.loading.conversations) body = h("p", { class: "empty" }, "Loading conversations…");
  else if (!state.conversations.length) {
    body = h("p", { class: "empty", "data-testid": "no-conversations" }, filtered
      ? (state.filter.unread ? "No unread conversations" : "No conversations")
        + (state.filter.name.trim() ? ` with “${state.filter.name.trim()}” in the name.` : ".")
      : "No conversations yet. They appear here, live, when people write to your pages.");
  } else {
    body = h("ul", { class: "conversations" }, ...state.conversations.map(conversationItem));
  }
  return h("section", { class: "pane list", id: "conversations-pane", "aria-label": "Conversations" },
    h("h2", {}, "Conversations"), tools, body);
}

function messageMeta(m: Message): HTMLElement {
  const meta = h("span", { class: "meta" }, time(m.sentAt, "message-time"));
  if (m.fromContact) return meta;
  const text = m.state === "FAILED" ? `failed: ${failure(m)}` : m.state.toLowerCase();
  meta.append(h("span", { class: `state ${m.state.toLowerCase()}`, "data-testid": "state" }, text));
  if (m.readByContact) meta.append(h("span", { class: "seen", "data-testid": "seen" }, "seen"));
  if (m.state === "FAILED") {
    meta.append(button("Resend", { id: `resend-${m.id}`, class: "resend", "data-testid": "resend",
                                   "aria-label": `Resend “${describe(m)}”` }, () => resend(m)));
  }
  return meta;
}

function tagEditor(conversation: Conversation): HTMLElement {
  const free = state.tags.filter((t) => !conversation.tags.some((c) => c.id === t.id));
  const name = h("input", { id: `tag-name-${conversation.id}`, list: "tag-names", autocomplete: "off",
                            placeholder: "Add a tag", "aria-label": "Tag name",
                            "data-testid": "tag-input" }) as HTMLInputElement;
  const color = h("select", { id: "tag-color", "aria-label": "Colour of a new tag",
                              "data-testid": "tag-color" },
    ...TAG_COLORS.map((c) => h("option", { value: c }, c[0] + c.slice(1).toLowerCase())),
  ) as HTMLSelectElement;
  const form = h("form", { class: "add-tag" }, name,
    h("datalist", { id: "tag-names" }, ...free.map((t) => h("option", { value: t.name }))),
    color, h("button", { type: "submit", "data-testid": "tag-add" }, "Tag"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = name.value.trim();
    name.value = "";
    addTag(value, color.value as TagColor);
  });
  return h("div", { class: "tags editor", "data-testid": "thread-tags", role: "group",
                    "aria-label": "Tags" },
    ...conversation.tags.map((t) => tagChip(t, () => removeTag(t))), form);
}

function threadPane(): HTMLElement {
  const conversation = state.open;
  if (!conversation) {
    return h("section", { class: "pane thread" }, h("p", { class: "empty" }, "Select a conversation."));
  }
  const start = state.older
    ? button(state.loading.older ? "Loading…" : "Load older messages",
             { id: "load-older", class: "quiet older", "data-testid": "load-older",
               disabled: state.loading.older ? "" : false }, loadOlder)
    : h("p", { class: "start", "data-testid": "thread-start" }, "Start of the conversation");
  const messages = state.loading.thread
    ? h("p", { class: "empty" }, "Loading messages…")
    : h("div", { class: "messages", id: "messages", tabindex: "0", "aria-label": "Messages" },
        start,
        h("ol", {}, ...state.messages.map((m) =>
          h("li", { class: `${m.fromContact ? "in" : "out"} ${m.state.toLowerCase()}`,
                    "data-testid": "message", "data-id": m.id },
            h("span", { class: "text", "data-testid": "message-text" }, describe(m)), messageMeta(m)))));
  const connected = conversation.channel?.connected !== false;
  const input = h("input", { id: `reply-${conversation.id}`, name: "text", autocomplete: "off",
                             placeholder: connected ? "Write a reply…" : "The page is disconnected",
                             "aria-label": "Reply", disabled: connected ? false : "",
                             "data-testid": "reply-input" }) as HTMLInputElement;
  const attach = h("input", { type: "file", name: "file", "aria-label": "Attach a file",
                              disabled: connected ? false : "",
                              "data-testid": "reply-file" }) as HTMLInputElement;
  const form = h("form", { class: "reply" }, input, attach,
    h("button", { type: "submit", "data-testid": "reply-send", disabled: connected ? false : "" },
      "Send"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value;
    const file = attach.files?.[0];
    input.value = "";
    attach.value = "";
    reply(text, file);
  });
  const header = h("header", { class: "thread-head" },
    h("h2", {}, conversation.contact.displayName,
      conversation.channel ? h("span", { class: "via" }, ` · ${conversation.channel.name}`) : ""),
    tagEditor(conversation));
  const notice = connected ? "" : h("p", { class: "notice", "data-testid": "disconnected" },
    "This page is disconnected: connect it again to reply.");
  return h("section", { class: "pane thread", "aria-label": "Thread" }, header, messages, notice, form);
}

/** Re-rendering replaces every node: carry over what is typed, the focus, and the scrolling. */
function keepPlace(): () => void {
  const values = new Map<string, string>();
  const fields = app.querySelectorAll<HTMLInputElement | HTMLSelectElement>("input[id], select[id]");
  for (const field of fields) values.set(field.id, field.value);
  const focused = document.activeElement instanceof HTMLElement && app.contains(document.activeElement)
    ? document.activeElement : null;
  const caret = focused instanceof HTMLInputElement && focused.type !== "password"
    ? [focused.selectionStart, focused.selectionEnd] : null;
  const scrolls = new Map<string, number>();
  for (const pane of app.querySelectorAll<HTMLElement>(".pane[id]")) {
    scrolls.set(pane.id, pane.scrollTop);
  }
  const thread = app.querySelector<HTMLElement>("#messages");
  const fromEnd = thread ? thread.scrollHeight - thread.scrollTop : 0;
  const atEnd = thread ? fromEnd - thread.clientHeight < 40 : false;
  const threadTop = thread?.scrollTop ?? 0;
  return () => {
    for (const [id, value] of values) {
      const field = document.getElementById(id) as HTMLInputElement | HTMLSelectElement | null;
      if (field) field.value = value;
    }
    for (const [id, top] of scrolls) {
      const pane = document.getElementById(id);
      if (pane) pane.scrollTop = top;
    }
    const list = app.querySelector<HTMLElement>("#messages");
    if (list) {
      if (threadScroll === "end" || (atEnd && threadScroll === null)) list.scrollTop = list.scrollHeight;
      else if (threadScroll === "keep-from-end") list.scrollTop = list.scrollHeight - fromEnd;
      else list.scrollTop = threadTop;
      threadScroll = null;
    }
    const again = focused?.id ? document.getElementById(focused.id) : null;
    if (again) {
      again.focus({ preventScroll: true });
      if (caret && again instanceof HTMLInputElement) again.setSelectionRange(caret[0], caret[1]);
    }
  };
}

function render() {
  const restore = keepPlace();
  const banner = state.error
    ? h("div", { class: "error", role: "alert", "data-testid": "error" }, state.error,
        button("Dismiss", { class: "quiet" }, () => { state.error = ""; render(); }))
    : "";
  app.replaceChildren(h("main", { class: "inbox" }, banner, channelsPane(), conversationsPane(),
                        threadPane()));
  restore();
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
  followLink();
  followConversations();
  try {
    await Promise.all([loadConversations(), loadTags()]);
  } catch (error) {
    state.loading.conversations = false;
    state.error = (error as Error).message;
  }
  render();
}

start();
