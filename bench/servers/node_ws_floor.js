// The raw-WebSocket floor: Node `ws` speaking just enough Engine.IO/Socket.IO for the load
// generator (open packet, namespace connect, echo ack, broadcast, rooms) by string surgery on
// the wire, with no parser, no packet objects and no per-socket state beyond a room name. What
// it costs is (close to) the least any Socket.IO server could spend on the same traffic.
//   node bench/servers/node_ws_floor.js --port P
"use strict";
const path = require("path");
const { createRequire } = require("module");
const req = createRequire(path.join(__dirname, "..", "..", "tests", "js", "package.json"));
const http = require("http");
const { WebSocketServer } = req("ws");

const port = Number(process.argv[process.argv.indexOf("--port") + 1]);
const httpServer = http.createServer((_, res) => res.writeHead(404).end());
const wss = new WebSocketServer({ server: httpServer, perMessageDeflate: false, clientTracking: true });
const rooms = new Map();
let counter = 0;
const OPEN_TAIL = '","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}';

wss.on("connection", (ws) => {
  const sid = "s" + (++counter).toString(36).padStart(19, "0");
  ws.send('0{"sid":"' + sid + OPEN_TAIL);
  let pendingBinaryAck = null;
  ws.on("message", (data, isBinary) => {
    if (isBinary) {
      if (pendingBinaryAck !== null) {
        ws.send(pendingBinaryAck);
        ws.send(data, { binary: true });
        pendingBinaryAck = null;
      }
      return;
    }
    const s = data.toString();
    if (s === "3") return; // pong
    if (s.startsWith("40")) {
      ws.send('40{"sid":"' + sid + 'x"}');
      return;
    }
    if (s.startsWith("451-")) {
      // binary echo: 451-<id>["echo",{placeholder}] -> 461-<id>[{placeholder}]
      const open = s.indexOf("[");
      const id = s.slice(4, open);
      const body = s.slice(open + 8); // after ["echo",
      pendingBinaryAck = "461-" + id + "[" + body;
      return;
    }
    if (!s.startsWith("42")) return;
    const open = s.indexOf("[");
    const id = s.slice(2, open);
    const rest = s.slice(open + 2);
    const quote = rest.indexOf('"');
    const name = rest.slice(0, quote);
    const payload = rest.slice(quote + 2); // `data]`
    if (name === "echo") {
      ws.send("43" + id + "[" + payload);
    } else if (name === "bcast" || name === "room_bcast") {
      // encoded once, like socket.io's pre-encoded broadcast; sent as text
      const frame = Buffer.from('42["tick",' + payload);
      let targets = wss.clients;
      if (name === "room_bcast") targets = rooms.get(JSON.parse(payload.slice(0, -1)).room) || [];
      for (const client of targets) client.send(frame, { binary: false });
    } else if (name === "join") {
      const room = JSON.parse(payload.slice(0, -1)).room;
      if (!rooms.has(room)) rooms.set(room, new Set());
      const members = rooms.get(room);
      if (!members.has(ws)) {
        // joining again is a no-op, as in socket.io (the join phase re-joins)
        members.add(ws);
        ws.on("close", () => members.delete(ws));
      }
      ws.send("43" + id + "[true]");
    }
  });
});
httpServer.listen({ port, host: "127.0.0.1", backlog: 4096 }, () => console.log(`READY ${port}`));
process.on("SIGTERM", () => process.exit(0));
