#!/usr/bin/env node
// A Node socket.io 4.8 server in a Redis cluster (@socket.io/redis-adapter 8.x, classic or
// sharded, or @socket.io/redis-streams-adapter 0.3.x), plus an @socket.io/redis-emitter, driven
// by sockjet's tests (redis_peers.py).
//
// Options (JSON in REDIS_NODE_OPTIONS): {url, name, key, sharded, requestsTimeout, server,
// streams, streamOptions, recovery}. With server=false only the emitter runs (no socket.io
// server, no adapter). streams=true uses the streams adapter (streamOptions go to its
// createAdapter); recovery (ms) turns connection state recovery on with that
// maxDisconnectionDuration.
//
// Protocol: one JSON command per line on stdin, {"id": 1, "cmd": "...", ...}; replies
// {"id": 1, "ok": true, "result": ...} or {"id": 1, "ok": false, "error": "..."}; unsolicited
// reports {"type": "ready" | "connection" | "disconnect" | "server_side", ...}.
// Binary values travel as {"$bin": "<base64>"} both ways.
"use strict";

const http = require("http");
const readline = require("readline");
const { Server } = require("socket.io");
const { createClient } = require("redis");
const { createAdapter, createShardedAdapter } = require("@socket.io/redis-adapter");
const streamsAdapter = require("@socket.io/redis-streams-adapter");
const { Emitter } = require("@socket.io/redis-emitter");

const opts = JSON.parse(process.env.REDIS_NODE_OPTIONS || "{}");
const NAME = opts.name || "node";
const KEY = opts.key || "socket.io";
const NAMESPACES = ["/", "/chat"];

const write = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

function encode(v) {
  if (v === undefined) return null;
  if (v === null || typeof v !== "object") return v;
  if (Buffer.isBuffer(v) || ArrayBuffer.isView(v)) return { $bin: Buffer.from(v).toString("base64") };
  if (Array.isArray(v)) return v.map(encode);
  const out = {};
  for (const [k, x] of Object.entries(v)) out[k] = encode(x);
  return out;
}

function decode(v) {
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) return v.map(decode);
  const keys = Object.keys(v);
  if (keys.length === 1 && keys[0] === "$bin") return Buffer.from(v.$bin, "base64");
  const out = {};
  for (const [k, x] of Object.entries(v)) out[k] = decode(x);
  return out;
}

function describe(socket) {
  return { id: socket.id, rooms: [...socket.rooms], data: encode(socket.data), auth: socket.handshake.auth };
}

function target(io, c) {
  let op = io.of(c.nsp || "/");
  if (c.rooms && c.rooms.length) op = op.to(c.rooms);
  if (c.except && c.except.length) op = op.except(c.except);
  if (c.volatile) op = op.volatile;
  if (c.local) op = op.local;
  return op;
}

function emitterTarget(emitter, c) {
  let op = emitter.of(c.nsp || "/");
  if (c.rooms && c.rooms.length) op = op.to(c.rooms);
  if (c.except && c.except.length) op = op.except(c.except);
  if (c.volatile) op = op.volatile;
  return op;
}

async function remoteSocket(io, c) {
  const sockets = await io.of(c.nsp || "/").fetchSockets();
  const found = sockets.find((s) => s.id === c.sid);
  if (!found) throw new Error(`no socket ${c.sid}`);
  return found;
}

async function run(io, emitter, sub, c) {
  const args = decode(c.args || []);
  switch (c.cmd) {
    case "emit":
      target(io, c).emit(c.event, ...args);
      return null;
    case "broadcast_ack":
      return await target(io, c).timeout(c.ms).emitWithAck(c.event, ...args);
    case "fetch":
      return (await target(io, c).fetchSockets()).map(describe);
    case "remote": {
      const socket = await remoteSocket(io, c);
      if (c.action === "emit") socket.emit(c.event, ...args);
      else if (c.action === "ask") return await socket.timeout(c.ms).emitWithAck(c.event, ...args);
      else if (c.action === "join") socket.join(c.room);
      else if (c.action === "leave") socket.leave(c.room);
      else if (c.action === "disconnect") socket.disconnect(!!c.close);
      return describe(socket);
    }
    case "sse":
      io.of(c.nsp || "/").serverSideEmit(c.event, ...args);
      return null;
    case "sse_ack":
      return await io.of(c.nsp || "/").serverSideEmitWithAck(c.event, ...args);
    case "join":
      target(io, c).socketsJoin(c.target);
      return null;
    case "leave":
      target(io, c).socketsLeave(c.target);
      return null;
    case "disconnect":
      target(io, c).disconnectSockets(!!c.close);
      return null;
    case "server_count":
      return await io.of(c.nsp || "/").adapter.serverCount();
    case "all_rooms":
      return [...(await io.of(c.nsp || "/").adapter.allRooms())].sort();
    case "local_rooms": {
      const socket = io.of(c.nsp || "/").sockets.get(c.sid);
      return socket ? [...socket.rooms].sort() : null;
    }
    case "local_socket": {
      const socket = io.of(c.nsp || "/").sockets.get(c.sid);
      return socket ? Object.assign(describe(socket), { recovered: socket.recovered }) : null;
    }
    case "set_data": {
      const socket = io.of(c.nsp || "/").sockets.get(c.sid);
      if (!socket) throw new Error(`no socket ${c.sid}`);
      Object.assign(socket.data, decode(c.data || {}));
      return null;
    }
    case "socket_emit": {
      const socket = io.of(c.nsp || "/").sockets.get(c.sid);
      if (!socket) throw new Error(`no socket ${c.sid}`);
      socket.emit(c.event, ...args);
      return null;
    }
    case "emitter_emit":
      emitterTarget(emitter, c).emit(c.event, ...args);
      return null;
    case "emitter_join":
      emitterTarget(emitter, c).socketsJoin(c.target);
      return null;
    case "emitter_leave":
      emitterTarget(emitter, c).socketsLeave(c.target);
      return null;
    case "emitter_disconnect":
      emitterTarget(emitter, c).disconnectSockets(!!c.close);
      return null;
    case "emitter_sse":
      emitter.of(c.nsp || "/").serverSideEmit(c.event, ...args);
      return null;
    case "sync_subscriptions": {
      // The adapters subscribe without waiting (e.g. to a room's channel when it is created);
      // one connection answers in order, so once this one is confirmed, theirs are too.
      const channel = `sockjet-sync-${NAME}-${c.id}`;
      if (opts.sharded) {
        await sub.sSubscribe(channel, () => {});
        await sub.sUnsubscribe(channel);
      } else {
        await sub.subscribe(channel, () => {});
        await sub.unsubscribe(channel);
      }
      return null;
    }
    default:
      throw new Error(`unknown command ${c.cmd}`);
  }
}

function setUp(io) {
  for (const name of NAMESPACES) {
    const nsp = io.of(name);
    nsp.on("connection", (socket) => {
      const auth = socket.handshake.auth || {};
      if (!socket.recovered) {
        socket.data = { server: NAME, user: auth.user || null };
        for (const room of auth.rooms || []) socket.join(room);
      }
      socket.on("join", (room, cb) => {
        socket.join(room);
        if (typeof cb === "function") cb(room);
      });
      socket.on("whoami", (cb) => {
        if (typeof cb === "function") cb({ id: socket.id, rooms: [...socket.rooms].sort(), data: encode(socket.data), server: NAME });
      });
      write({ type: "connection", nsp: name, id: socket.id, recovered: !!socket.recovered });
      socket.on("disconnect", (reason) => write({ type: "disconnect", nsp: name, id: socket.id, reason }));
    });
    // Server-side events from other servers: "ping" answers, "notify" is reported.
    nsp.on("ping", (...args) => {
      const cb = typeof args[args.length - 1] === "function" ? args.pop() : null;
      if (cb) cb({ from: NAME, echo: encode(args[0]) });
    });
    nsp.on("notify", (...args) => {
      const cb = typeof args[args.length - 1] === "function" ? args.pop() : null;
      write({ type: "server_side", nsp: name, event: "notify", args: encode(args), ack: !!cb });
    });
  }
}

// The streams adapter subscribes and starts reading the stream (from "$") on clients of its own,
// without telling when: ready once every namespace's private channel has its subscriber and one
// of our clients (they share our name) blocks in XREAD.
async function streamsReady(io, pub) {
  const prefix = (opts.streamOptions && opts.streamOptions.channelPrefix) || KEY;
  for (let i = 0; i < 500; i++) {
    let ok = true;
    for (const name of NAMESPACES) {
      const channel = `${prefix}#${name}#${io.of(name).adapter.uid}#`;
      const reply = await pub.sendCommand(["PUBSUB", "NUMSUB", channel]);
      if (Number(reply[1]) < 1) ok = false;
    }
    const clients = String(await pub.sendCommand(["CLIENT", "LIST"]));
    const reading = clients.split("\n").some((l) => l.includes(`name=node-${NAME} `) && l.includes("cmd=xread"));
    if (ok && reading) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error("the streams adapter did not start");
}

async function main() {
  const pub = createClient({ url: opts.url, name: `node-${NAME}` });
  const sub = pub.duplicate();
  pub.on("error", (err) => process.stderr.write(`pub: ${err.message}\n`));
  sub.on("error", (err) => process.stderr.write(`sub: ${err.message}\n`));
  await Promise.all([pub.connect(), sub.connect()]);
  const emitter = new Emitter(pub, { key: KEY });
  let io = null;
  let httpServer = null;
  if (opts.server !== false) {
    httpServer = http.createServer();
    const adapter = opts.streams
      ? streamsAdapter.createAdapter(pub, Object.assign({ channelPrefix: KEY }, opts.streamOptions || {}))
      : opts.sharded
        ? createShardedAdapter(pub, sub, { channelPrefix: KEY })
        : createAdapter(pub, sub, { key: KEY, requestsTimeout: opts.requestsTimeout || 5000 });
    const serverOptions = { adapter, pingInterval: opts.pingInterval || 10000, pingTimeout: opts.pingTimeout || 5000 };
    if (opts.recovery) {
      serverOptions.connectionStateRecovery = { maxDisconnectionDuration: opts.recovery, skipMiddlewares: true };
    }
    io = new Server(httpServer, serverOptions);
    setUp(io);
    // The adapters subscribe without waiting; commands on one connection are answered in
    // order, so once this one is confirmed, theirs are too.
    if (opts.streams) await streamsReady(io, pub);
    else if (opts.sharded) await sub.sSubscribe(`sockjet-ready-${NAME}`, () => {});
    else await sub.subscribe(`sockjet-ready-${NAME}`, () => {});
    await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  }
  write({ type: "ready", port: httpServer ? httpServer.address().port : null });

  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    if (!line.trim()) return;
    const c = JSON.parse(line);
    run(io, emitter, sub, c).then(
      (result) => write({ id: c.id, ok: true, result: encode(result) }),
      (err) => write({ id: c.id, ok: false, error: String(err && err.message), responses: encode(err && err.responses) }),
    );
  });
  rl.on("close", async () => {
    if (io) io.close();
    if (httpServer) httpServer.close();
    await Promise.allSettled([pub.quit(), sub.quit()]);
    process.exit(0);
  });
}

main().catch((err) => {
  process.stderr.write(`${err && err.stack}\n`);
  process.exit(1);
});
