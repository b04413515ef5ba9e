// Apollo Client 3 against /graphql, as a front end would use it: driven by tests/test_apollo.py.
// One JSON object per line on stdout for each thing that happens.
// Usage: node client.mjs '{"http": "http://…/graphql", "ws": "ws://…/graphql", "token": "…",
//   "timeoutMs": N}'
// The test posts the webhooks: a first message before this starts (so a conversation exists),
// another once the three subscriptions are live (it watches /health).
import { createHash } from "node:crypto";
import {
  ApolloClient, HttpLink, InMemoryCache, gql, split,
} from "@apollo/client/core/index.js";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries/index.js";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions/index.js";
import { getMainDefinition } from "@apollo/client/utilities/index.js";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const options = JSON.parse(process.argv[2]);
const print = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const headers = { Authorization: `Bearer ${options.token}` };
const fail = (where) => (error) => {
  print({ event: "error", where, message: String(error?.message ?? error),
          errors: error?.graphQLErrors ?? error?.protocolErrors ?? null });
  process.exit(1);
};
setTimeout(() => { print({ event: "timeout" }); process.exit(2); }, options.timeoutMs ?? 30000);

// Node 20 has no WebSocket of its own: the ws package's.
const wsClient = createClient({ url: options.ws, webSocketImpl: WebSocket,
                                connectionParams: headers, lazy: true, retryAttempts: 0 });
const http = new HttpLink({ uri: options.http, headers });
const ws = new GraphQLWsLink(wsClient);
const overWebsocket = ({ query, getContext }) => {
  const definition = getMainDefinition(query);
  return definition.kind === "OperationDefinition" && definition.operation === "subscription"
    && getContext().transport === "ws";
};
// Subscriptions go over the websocket when asked to, else over HTTP (multipart), as everything
// else does.
const client = new ApolloClient({ link: split(overWebsocket, ws, http), cache: new InMemoryCache() });

const CONVERSATIONS = gql`query Inbox {
  conversations(first: 5) { edges { node { id unreadCount lastMessage { id state rawContent } } } }
}`;
// One document per transport: Apollo shares one request among subscriptions of the same
// document and variables, whatever their context.
const CREATED = {
  ws: gql`subscription CreatedOverWebsocket { messageCreated { id rawContent state } }`,
  http: gql`subscription CreatedOverHttp { messageCreated { id rawContent state } }`,
};
const UPDATED = gql`subscription Updated { messageUpdated { id state } }`;
const SEND = gql`mutation Send($id: ID!) {
  sendMessage(input: {conversationId: $id, message: {text: "from Apollo"}}) { id state }
}`;
const STATE = gql`fragment State on Message { id state }`;

const text = (message) => message.rawContent?.message?.text ?? message.rawContent?.text;

const inbox = await client.query({ query: CONVERSATIONS }).catch(fail("query"));
const conversation = inbox.data.conversations.edges[0].node;
print({ event: "query", conversation });

let sent = null;  // the message sendMessage made: its state is watched in the cache
const got = { ws: null, http: null };
let delivered = false;

const checkDone = async () => {
  if (!got.ws || !got.http || !sent || !delivered) return;
  print({ event: "done" });
  await persistedQueries();
  process.exit(0);
};

const sendOnce = async () => {
  if (!got.ws || !got.http || sent) return;
  const result = await client.mutate({ mutation: SEND, variables: { id: conversation.id } })
    .catch(fail("mutation"));
  sent = result.data.sendMessage;
  const cached = client.readFragment({ id: client.cache.identify(sent), fragment: STATE });
  print({ event: "mutation", message: sent, cached });
};

for (const transport of ["ws", "http"]) {
  client.subscribe({ query: CREATED[transport], context: { transport } }).subscribe({
    next: async ({ data, errors }) => {
      if (errors) fail(`${transport} subscription`)({ message: "errors", graphQLErrors: errors });
      const message = data.messageCreated;
      print({ event: "created", transport, id: message.id, text: text(message) });
      if (text(message) === "from Apollo") return;  // the gateway's own send, echoed as created
      got[transport] = message;
      await sendOnce();
    },
    error: fail(`${transport} subscription`),
  });
}

// Over HTTP too: the update lands in the normalised cache, where the mutation left it PENDING.
client.subscribe({ query: UPDATED }).subscribe({
  next: async ({ data }) => {
    const update = data.messageUpdated;
    if (!sent || update.id !== sent.id) return;
    const cached = client.readFragment({ id: client.cache.identify(sent), fragment: STATE });
    print({ event: "updated", update, cached });
    if (cached.state === "DELIVERED") {
      delivered = true;
      await checkDone();
    }
  },
  error: fail("messageUpdated"),
});
print({ event: "subscribing" });

// Apollo's persisted-queries link: the hash first (by GET), the document only when asked.
async function persistedQueries() {
  const requests = [];
  const fetchLogged = (uri, init) => {
    const url = new URL(uri);
    const body = init.body ? JSON.parse(init.body) : null;
    requests.push({ method: init.method ?? "GET",
                    document: Boolean(body?.query ?? url.searchParams.get("query")),
                    hash: Boolean(body?.extensions?.persistedQuery
                                  ?? url.searchParams.get("extensions")) });
    return fetch(uri, init);
  };
  const sha256 = (document) => createHash("sha256").update(document).digest("hex");
  const apq = new ApolloClient({
    link: createPersistedQueryLink({ sha256, useGETForHashedQueries: true })
      .concat(new HttpLink({ uri: options.http, headers, fetch: fetchLogged })),
    cache: new InMemoryCache(),
  });
  const TAGS = gql`query PersistedTags { tags { id name } }`;
  const first = await apq.query({ query: TAGS, fetchPolicy: "network-only" })
    .catch(fail("persisted query"));
  const second = await apq.query({ query: TAGS, fetchPolicy: "network-only" })
    .catch(fail("persisted query"));
  print({ event: "persisted", requests, first: first.data, second: second.data });
}
