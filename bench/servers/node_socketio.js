// Node's reference socket.io 4.8 implementing the benchmark contract.
//   node bench/servers/node_socketio.js --port P [--recovery]
// Modules resolve from tests/js/node_modules (installed by ./dev setup). Prints "READY <port>".
"use strict";
const path = require("path");
const { createRequire } = require("module");
const req = createRequire(path.join(__dirname, "..", "..", "tests", "js", "package.json"));
const http = require("http");
const { Server } = req("socket.io");

const port = Number(process.argv[process.argv.indexOf("--port") + 1]);
const httpServer = http.createServer();
const options = { maxHttpBufferSize: 16e6 };
if (process.argv.includes("--recovery")) options.connectionStateRecovery = {};
const io = new Server(httpServer, options);
io.on("connection", (socket) => {
  socket.on("echo", (data, ack) => ack(data));
  socket.on("bcast", (data) => io.emit("tick", data));
  socket.on("join", (data, ack) => {
    socket.join(data.room);
    ack(true);
  });
  socket.on("room_bcast", (data) => io.to(data.room).emit("tick", data));
});
httpServer.listen({ port, host: "127.0.0.1", backlog: 4096 }, () => console.log(`READY ${port}`));
process.on("SIGTERM", () => process.exit(0));
