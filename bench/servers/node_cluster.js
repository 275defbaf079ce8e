// Node's reference socket.io 4.8 as one node of a Redis cluster (@socket.io/redis-adapter, its
// sharded adapter with --adapter sharded, or @socket.io/redis-streams-adapter with --adapter
// streams; --recovery turns connection state recovery on; --cluster: --redis is a node of a
// Redis Cluster, sharded pub/sub).
//   node bench/servers/node_cluster.js --port P --redis redis://127.0.0.1:R [--adapter streams]
// Contract of the cluster benchmark, namespace "/": "bcast" data -> io.emit("tick", data) to
// every socket of every node. Modules resolve from tests/js/node_modules (./dev setup).
// Prints "READY <port>" once listening and subscribed.
"use strict";
const path = require("path");
const { createRequire } = require("module");
const req = createRequire(path.join(__dirname, "..", "..", "tests", "js", "package.json"));
const http = require("http");
const { Server } = req("socket.io");
const { createAdapter, createShardedAdapter } = req("@socket.io/redis-adapter");
const streams = req("@socket.io/redis-streams-adapter");
const { createClient, createCluster } = req("redis");

const arg = (name) => process.argv[process.argv.indexOf(name) + 1];
const port = Number(arg("--port"));
const kind = process.argv.includes("--adapter") ? arg("--adapter") : "classic";
const recovery = process.argv.includes("--recovery");
const cluster = process.argv.includes("--cluster"); // --redis is a Redis Cluster node

async function main() {
  const pubClient = cluster
    ? createCluster({ rootNodes: [{ url: arg("--redis") }] })
    : createClient({ url: arg("--redis") });
  const subClient = pubClient.duplicate();
  await Promise.all([pubClient.connect(), subClient.connect()]);
  const httpServer = http.createServer();
  const options = {
    adapter:
      kind === "streams"
        ? streams.createAdapter(pubClient, { useShardedPubSub: cluster })
        : kind === "sharded"
          ? createShardedAdapter(pubClient, subClient)
          : createAdapter(pubClient, subClient),
    pingInterval: 300000, // no heartbeat traffic inside a measurement
  };
  if (recovery) options.connectionStateRecovery = { maxDisconnectionDuration: 120000 };
  const io = new Server(httpServer, options);
  if (kind === "streams") {
    // Its subscriptions and its stream reader start on their own clients without telling: wait
    // until the private channel has its subscriber (the reader starts at the same time).
    const channel = `socket.io#/#${io.of("/").adapter.uid}#`;
    for (let i = 0; i < 500 && !cluster; i++) {
      const reply = await pubClient.sendCommand(["PUBSUB", "NUMSUB", channel]);
      if (Number(reply[1]) >= 1) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    if (cluster) await new Promise((resolve) => setTimeout(resolve, 500));
    await new Promise((resolve) => setTimeout(resolve, 100)); // its XREAD starts from "$"
  }
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
