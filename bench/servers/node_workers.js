// Node's socket.io 4.8 on N workers of the cluster module, @socket.io/cluster-adapter between
// them (broadcasts relayed by the primary over IPC); with --sticky, @socket.io/sticky in the
// primary routes every request of a polling session to its worker (what polling clients need).
//   node bench/servers/node_workers.js --port P --workers N [--sticky]
// The benchmark contract of bench/servers/node_socketio.js, namespace "/". Without --sticky the
// workers listen themselves: the cluster module's primary accepts and hands each connection to
// a worker in turn (round robin, Node's default on Linux). Modules resolve from
// tests/js/node_modules (./dev setup). Prints "READY <port>" once every worker listens.
"use strict";
const path = require("path");
const cluster = require("cluster");
const http = require("http");
const { createRequire } = require("module");
const req = createRequire(path.join(__dirname, "..", "..", "tests", "js", "package.json"));
const { Server } = req("socket.io");
const { createAdapter, setupPrimary } = req("@socket.io/cluster-adapter");

const arg = (name, fallback) => {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : fallback;
};
const port = Number(arg("--port"));
const workers = Number(arg("--workers", "1"));
const sticky = process.argv.includes("--sticky");

if (cluster.isPrimary) {
  setupPrimary(); // the cluster adapter's relay
  cluster.setupPrimary({ serialization: "advanced" }); // Buffers over IPC (sticky's chunks)
  let listening = 0;
  const ready = () => {
    listening += 1;
    if (listening === workers) console.log(`READY ${port}`);
  };
  if (sticky) {
    const { setupMaster } = req("@socket.io/sticky");
    const httpServer = http.createServer();
    setupMaster(httpServer, { loadBalancingMethod: "least-connection" });
    httpServer.listen({ port, host: "127.0.0.1", backlog: 4096 });
    cluster.on("message", (worker, message) => {
      if (message === "ready") ready();
    });
  } else {
    cluster.on("listening", ready);
  }
  for (let i = 0; i < workers; i++) cluster.fork();
  process.on("SIGTERM", () => {
    for (const id in cluster.workers) cluster.workers[id].kill();
    process.exit(0);
  });
} else {
  const httpServer = http.createServer();
  const io = new Server(httpServer, { adapter: createAdapter(), maxHttpBufferSize: 16e6 });
  io.on("connection", (socket) => {
    socket.on("echo", (data, ack) => ack(data));
    socket.on("bcast", (data) => io.emit("tick", data));
    socket.on("join", (data, ack) => {
      socket.join(data.room);
      ack(true);
    });
    socket.on("room_bcast", (data) => io.to(data.room).emit("tick", data));
  });
  if (sticky) {
    const { setupWorker } = req("@socket.io/sticky");
    setupWorker(io);
    process.send("ready");
  } else {
    httpServer.listen({ port, host: "127.0.0.1", backlog: 4096 });
  }
}
