// Talking to the gateway: GraphQL over HTTP for queries and mutations, graphql-ws for live events.
import { createClient, type Client } from "graphql-ws";

const TOKEN_KEY = "messenger-gateway-token";

export class AuthRequired extends Error {}

/** The API token lives in session storage only: gone when the tab closes. */
export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) ?? "",
  set: (value: string) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

function authHeaders(): Record<string, string> {
  const value = token.get();
  return value ? { Authorization: `Bearer ${value}` } : {};
}

export async function gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { "Content-Type": "application/json", ...authHeaders() },
    body: JSON.stringify({ query, variables }),
  });
  if (response.status === 401 || response.status === 403) throw new AuthRequired();
  if (!response.ok) throw new Error(`The gateway answered HTTP ${response.status}`);
  const body = await response.json();
  if (body.errors?.length) throw new Error(body.errors[0].message);
  return body.data as T;
}

/** Upload a file (the GraphQL multipart request spec); returns the attachment id that
 * sendMessage's `attachmentId` takes. The header is what lets a multipart body in. */
export async function uploadAttachment(file: File): Promise<string> {
  const kind = ["image", "video", "audio"].find((k) => file.type.startsWith(`${k}/`)) ?? "file";
  const form = new FormData();
  form.append("operations", JSON.stringify({
    query: "mutation ($file: Upload!, $type: AttachmentType!) { uploadAttachment(file: $file, type: $type) { id } }",
    variables: { file: null, type: kind.toUpperCase() },
  }));
  form.append("map", JSON.stringify({ 0: ["variables.file"] }));
  form.append("0", file, file.name);
  const response = await fetch("/graphql", {
    method: "POST", body: form, headers: { "Apollo-Require-Preflight": "true", ...authHeaders() },
  });
  if (response.status === 401 || response.status === 403) throw new AuthRequired();
  const body = await response.json().catch(() => ({}));
  if (!response.ok || body.errors?.length) {
    throw new Error(body.errors?.[0]?.message ?? body.message ?? `HTTP ${response.status}`);
  }
  return body.data.uploadAttachment.id as string;
}

/** Whether live updates flow: "lost" when the websocket drops, "restored" when it is back. */
export type Link = "lost" | "restored";

const PING_EVERY_MS = 10_000; // a socket that froze (sleep, a proxy) is noticed by its missing pong
const PONG_WITHIN_MS = 5_000;

let client: Client | null = null;
let activeSocket: WebSocket | null = null;
let onLink: (link: Link) => void = () => {};

/** Tell `listener` each time the websocket is lost and each time it is back. */
export function watchLink(listener: (link: Link) => void) {
  onLink = listener;
}

function wsClient(): Client {
  if (!client) {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    let lost = false;
    let pongTimer: ReturnType<typeof setTimeout> | undefined;
    client = createClient({
      url: `${scheme}://${location.host}/graphql`,
      connectionParams: () => authHeaders(),
      retryAttempts: Infinity,
      shouldRetry: () => true,
      // Back soon after a restart, and never more than a few seconds apart.
      retryWait: (retries) => new Promise((resolve) =>
        setTimeout(resolve, Math.min(500 * 2 ** retries, 4000) + Math.random() * 300)),
      keepAlive: PING_EVERY_MS,
      on: {
        ping: (received) => {
          if (received) return;
          pongTimer = setTimeout(() => {
            activeSocket?.close(4408, "no pong"); // graphql-ws retries this one
          }, PONG_WITHIN_MS);
        },
        pong: (received) => { if (received) clearTimeout(pongTimer); },
        connected: (socket) => {
          activeSocket = socket as WebSocket;
          if (lost) onLink("restored");
          lost = false;
        },
        closed: () => {
          activeSocket = null;
          clearTimeout(pongTimer);
          if (!lost) onLink("lost");
          lost = true;
        },
      },
    });
  }
  return client;
}

/** Subscribe; returns the function that ends the subscription. */
export function subscribe<T>(
  query: string,
  variables: Record<string, unknown>,
  onData: (data: T) => void,
  onError: (message: string) => void,
): () => void {
  return wsClient().subscribe<T>(
    { query, variables },
    {
      next: (result) => {
        if (result.errors?.length) onError(result.errors[0].message);
        else if (result.data) onData(result.data as T);
      },
      error: (error) => onError(error instanceof Error ? error.message : "live updates stopped"),
      complete: () => {},
    },
  );
}
