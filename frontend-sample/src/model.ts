// The shapes the inbox reads, and how it words them.
export type State = "PENDING" | "DELIVERED" | "FAILED";
export type TagColor = "BLUE" | "RED" | "GREEN" | "PURPLE";
export const TAG_COLORS: TagColor[] = ["BLUE", "RED", "GREEN", "PURPLE"];

export interface Channel { id: string; name: string; imageUrl: string | null; sourceChannelId: string }
export interface Tag { id: string; name: string; color: TagColor }
export interface Message {
  id: string; conversationId: string; content: any; state: State; senderType: string;
  fromContact: boolean; sentAt: string; metadata: any; readByContact: boolean;
}
export interface Conversation {
  id: string; unreadCount: number; lastActivityAt: string;
  contact: { displayName: string; avatarUrl: string | null };
  channel: { id: string; name: string; connected: boolean } | null;
  tags: Tag[];
  lastMessage: Message | null;
}
export interface Page<T> {
  edges: { node: T }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

export const TAG = "id name color";
export const MESSAGE =
  "id conversationId content: rawContent state senderType fromContact sentAt metadata readByContact";
export const CONVERSATION = `id unreadCount lastActivityAt contact { displayName avatarUrl }
  channel { id name connected } tags { ${TAG} } lastMessage { ${MESSAGE} }`;

/** One line of text for a message: its text, or what kind of thing it is. */
export function describe(message: Message): string {
  const content = message.content ?? {};
  const body = content.message ?? content; // inbound: the Messenger event; outbound: the message
  if (content.postback) return content.postback.title ?? "(button)";
  if (typeof body.text === "string") return body.text;
  const attachment = body.attachments?.[0] ?? body.attachment;
  if (attachment) return `[${attachment.type ?? "attachment"}]`;
  return "(message)";
}

export function failure(message: Message): string {
  return message.metadata?.error ?? "not delivered";
}

/** When something happened, as short as is clear: the time today, else the day (and year). */
export function when(iso: string, now: Date = new Date()): string {
  const date = new Date(iso);
  if (date.toDateString() === now.toDateString()) {
    return date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  }
  return date.toLocaleString(undefined, {
    day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
    year: date.getFullYear() === now.getFullYear() ? undefined : "numeric",
  });
}

/** The full date and time, for a tooltip. */
export function exactly(iso: string): string {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "full", timeStyle: "medium" });
}

export function newestFirst(a: Conversation, b: Conversation): number {
  return Date.parse(b.lastActivityAt) - Date.parse(a.lastActivityAt);
}

export function oldestFirst(a: Message, b: Message): number {
  return Date.parse(a.sentAt) - Date.parse(b.sentAt);
}
