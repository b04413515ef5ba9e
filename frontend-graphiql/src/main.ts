// GraphiQL for the gateway: queries and mutations over HTTP POST, subscriptions over a websocket
// (graphql-transport-ws), both at /graphql and both carrying the Authorization header the user
// sets in GraphiQL's headers editor.
import { getOperationAST, parse } from "graphql";
import { createClient, type Client } from "graphql-ws";
import { GraphiQL } from "graphiql";
import { createElement } from "react";
import { createRoot } from "react-dom/client";
import "graphiql/style.css";

type Params = { query: string; operationName?: string | null; variables?: Record<string, unknown> | null };
type Options = { headers?: Record<string, unknown> };

const HTTP_URL = new URL("/graphql", location.href).href;
const WS_URL = HTTP_URL.replace(/^http/, "ws");
// The token the inbox keeps for this tab, offered as the first headers.
const SAVED_TOKEN = sessionStorage.getItem("messenger-gateway-token");

function isSubscription(params: Params): boolean {
  try {
    const operation = getOperationAST(parse(params.query), params.operationName ?? undefined);
    return operation?.operation === "subscription";
  } catch {
    return false; // the server says what is wrong with it
  }
}

function stringHeaders(headers: Record<string, unknown> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value !== undefined && value !== null) out[name] = String(value);
  }
  return out;
}

function authorization(headers: Record<string, string>): string | undefined {
  const name = Object.keys(headers).find((key) => key.toLowerCase() === "authorization");
  return name === undefined ? undefined : headers[name];
}

// One websocket at a time, opened again when the Authorization header changes: the gateway
// reads the token once, in connection_init.
let client: Client | null = null;
let clientAuth: string | undefined;

function websocket(auth: string | undefined): Client {
  if (!client || auth !== clientAuth) {
    client?.dispose();
    clientAuth = auth;
    client = createClient({
      url: WS_URL,
      lazy: true,
      retryAttempts: 0,
      connectionParams: auth === undefined ? {} : { Authorization: auth },
    });
  }
  return client;
}

function closeReason(error: unknown): Error {
  if (error instanceof Error) return error;
  const event = error as { code?: number; reason?: string };
  return new Error(`the websocket closed (${event.code ?? "?"}${event.reason ? `: ${event.reason}` : ""})`);
}

async function* subscribe(params: Params, auth: string | undefined) {
  try {
    yield* websocket(auth).iterate({
      query: params.query,
      operationName: params.operationName ?? undefined,
      variables: params.variables ?? undefined,
    });
  } catch (error) {
    throw closeReason(error);
  }
}

async function post(params: Params, headers: Record<string, string>): Promise<unknown> {
  const response = await fetch(HTTP_URL, {
    method: "POST",
    headers: { Accept: "application/json", "Content-Type": "application/json", ...headers },
    body: JSON.stringify(params),
    credentials: "same-origin",
  });
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return { errors: [{ message: `${response.status} ${response.statusText}: ${text}` }] };
  }
}

function fetcher(params: Params, options?: Options) {
  const headers = stringHeaders(options?.headers);
  return isSubscription(params) ? subscribe(params, authorization(headers)) : post(params, headers);
}

createRoot(document.getElementById("graphiql")!).render(
  createElement(GraphiQL, {
    fetcher,
    defaultHeaders: SAVED_TOKEN ? JSON.stringify({ Authorization: `Bearer ${SAVED_TOKEN}` }, null, 2) : undefined,
    defaultEditorToolsVisibility: SAVED_TOKEN ? "headers" : undefined,
  } as Parameters<typeof GraphiQL>[0]),
);
