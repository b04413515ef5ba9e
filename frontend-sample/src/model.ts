// The shapes the inbox reads, and how it words them.
export type State = "PENDING" | "DELIVERED" | "FAILED";

export interface Channel { id: string; name: string; imageUrl: string | null; sourceChannelId: string }
export interface Message {
  id: string; conversationId: string; content: any; state: State; senderType: string;
  fromContact: boolean; sentAt: string; metadata: any;
}
export interface Conversation {
  id: string; unreadCount: number; lastActivityAt: string;
  contact: { displayName: string; avatarUrl: string | null };
  channel: { name: string } | null;
  lastMessage: Message | null;
}

export const MESSAGE = "id conversationId content state senderType fromContact sentAt metadata";
export const CONVERSATION = `id unreadCount lastActivityAt contact { displayName avatarUrl }
  channel { name } lastMessage { ${MESSAGE} }`;

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
