// Node's reference socket.io 4.8 as one node of a Redis cluster (@socket.io/redis-adapter).
//   node bench/servers/node_cluster.js --port P --redis redis://127.0.0.1:R
// Contract of the cluster benchmark, namespace "/": "bcast" data -> io.emit("tick", data) to
// every socket of every node. Modules resolve from tests/js/node_modules (./dev setup).
// Prints "READY <port>" once listening and subscribed.
"use strict";
const path = require("path");
const { createRequire } = require("module");
const req = createRequire(path.join(__dirname, "..", "..", "tests", "js", "package.json"));
const http = require("http");
const { Server } = req("socket.io");
const { createAdapter } = req("@socket.io/redis-adapter");
const { createClient } = req("redis");

const arg = (name) => process.argv[process.argv.indexOf(name) + 1];
const port = Number(arg("--port"));

async function main() {
  const pubClient = createClient({ url: arg("--redis") });
  const subClient = pubClient.duplicate();
  await Promise.all([pubClient.connect(), subClient.connect()]);
  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    adapter: createAdapter(pubClient, subClient),
    pingInterval: 300000, // no heartbeat traffic inside a measurement
  });
  io.on("connection", (socket) => {
    socket.on("bcast", (data) => io.emit("tick", data));
  });
  httpServer.listen({ port, host: "127.0.0.1", backlog: 4096 }, () =>
    console.log(`READY ${port}`),
  );
  process.on("SIGTERM", () => process.exit(0));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
