// A client of the typed content, as a front-end would write one: the generated types only, no
// casts and no `any`. tsc must accept it (tests/test_codegen.py); a content type added to the
// schema and not handled here fails the `never` check.
import type {
  ContentFragment,
  ConversationMessagesQuery,
  SendMessageMutationVariables,
} from "./generated/graphql";

export function preview(content: ContentFragment): string {
  switch (content.__typename) {
    case "TextContent":
      return content.quickReplyPayload ? `${content.text} (${content.quickReplyPayload})` : content.text;
    case "AttachmentContent":
      return content.attachments
        .map((a) => (a.type === "STICKER" ? `sticker ${a.stickerId ?? ""}` : `${a.type.toLowerCase()} ${a.url ?? ""}`))
        .join(", ");
    case "QuickRepliesContent":
      return `${content.text} [${content.replies.map((r) => r.title ?? r.contentType).join(" | ")}]`;
    case "ButtonTemplateContent":
      return `${content.text} [${content.buttons.map((b) => b.title ?? b.type).join(" | ")}]`;
    case "GenericTemplateContent":
      return content.elements.map((e) => e.subtitle ? `${e.title}: ${e.subtitle}` : e.title).join(" / ");
    case "PostbackContent":
      return content.title ?? content.payload ?? "(button)";
    case "ReactionContent":
      return content.emoji ?? content.action;
    case "UnknownContent":
      return JSON.stringify(content.raw);
    default: {
      const unhandled: never = content;
      return unhandled;
    }
  }
}

export function previews(page: ConversationMessagesQuery): string[] {
  return page.messages.edges.map((edge) => preview(edge.node.content));
}

// The @oneOf input: one branch at a time; two at once do not compile.
export const quickReplies: SendMessageMutationVariables = {
  input: {
    conversationId: "c1",
    message: {
      quickReplies: {
        text: "Pick a colour",
        replies: [{ title: "Red", payload: "RED", imageUrl: "https://img.example/red.png" }],
      },
    },
  },
};

export const raw: SendMessageMutationVariables = {
  input: { conversationId: "c1", message: { raw: { sticker_id: 369239263222822 } } },
};

export const both: SendMessageMutationVariables = {
  // @ts-expect-error: text and raw are two branches of the @oneOf OutgoingMessage
  input: { conversationId: "c1", message: { text: "Hi", raw: { text: "Hi" } } },
};
