// Airy's realtime client library, @stomp/stompjs 7, against /ws.communication: driven by
// tests/test_stomp.py. One JSON object per line on stdout for each thing that happens.
// Usage: node client.mjs '{"url": "ws://…/ws.communication", "connectHeaders": {…},
//   "wsHeaders": {…}, "heartbeat": [incoming, outgoing], "messages": N, "until": "<type>",
//   "timeoutMs": N}'
import { Client } from "@stomp/stompjs";
import WebSocket from "ws";

const options = JSON.parse(process.argv[2]);
const print = (event) => process.stdout.write(JSON.stringify(event) + "\n");
let received = 0;

const client = new Client({
  // Node 20 has no WebSocket of its own: the ws package's, with headers on the upgrade (the
  // cookie a browser would send).
  webSocketFactory: () => new WebSocket(options.url, ["v12.stomp", "v11.stomp", "v10.stomp"],
                                        { headers: options.wsHeaders || {} }),
  connectHeaders: options.connectHeaders || {},
  heartbeatIncoming: (options.heartbeat || [0, 0])[0],
  heartbeatOutgoing: (options.heartbeat || [0, 0])[1],
  reconnectDelay: 0,
  debug: (line) => print({ event: "debug", line }),
  onConnect: (frame) => {
    print({ event: "connected", headers: frame.headers });
    client.watchForReceipt("sub-1", () => print({ event: "subscribed" }));
    client.subscribe("/events", (message) => {
      const body = JSON.parse(message.body);
      print({ event: "message", headers: message.headers, body });
      received += 1;
      if (options.until ? body.type === options.until : received >= (options.messages ?? 1)) {
        client.deactivate();  // DISCONNECT with a receipt, then the close once it comes
      }
    }, { id: "sub-0", receipt: "sub-1" });
  },
  onStompError: (frame) => print({ event: "error", headers: frame.headers, body: frame.body }),
  onWebSocketClose: (event) => {
    print({ event: "closed", code: event.code });
    process.exit(0);
  },
});
client.activate();
setTimeout(() => { print({ event: "timeout" }); process.exit(2); }, options.timeoutMs ?? 20000);
