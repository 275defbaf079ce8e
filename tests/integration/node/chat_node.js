#!/usr/bin/env node
// The Node chat that `sockjet chat` replaces, as a peer for the mixed-cluster test: a socket.io
// 4.8 server with the joinRoom / sendMessage / typing / leaveRoom / echo handlers of the
// socket.io chat example, with the payloads of docs/chat.md "Events", in a Redis cluster through
// @socket.io/redis-adapter. Rooms are named by their roomId; the user is kept in socket.data
// ({userId, username}), so that presence (fetchSockets) is the same on every server.
//
// It keeps no database: its history is the last 50 messages sent through this server.
//
// Options (JSON in CHAT_NODE_OPTIONS): {url (redis), name, pingInterval, pingTimeout} (ms).
// Writes one line {"type": "ready", "port": N} once subscribed and listening; exits when stdin
// closes.
"use strict";

const crypto = require("crypto");
const http = require("http");
const { Server } = require("socket.io");
const { createClient } = require("redis");
const { createAdapter } = require("@socket.io/redis-adapter");

const opts = JSON.parse(process.env.CHAT_NODE_OPTIONS || "{}");
const HISTORY = 50;
const MAX_MESSAGE = 2000;
const history = new Map(); // roomId -> the last messages sent through this server

const text = (v) => (typeof v === "string" ? v.trim() : "");

function userOf(socket) {
  const d = socket.data || {};
  return typeof d.userId === "string" && typeof d.username === "string"
    ? { userId: d.userId, username: d.username }
    : null;
}

// Distinct users, sorted by name as sockjet sorts them.
function online(sockets) {
  const users = new Map();
  for (const s of sockets) {
    const u = userOf(s);
    if (u) users.set(u.userId, u);
  }
  const key = (u) => [u.username.toLowerCase(), u.userId];
  return [...users.values()].sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0;
  });
}

function setUp(io) {
  const nsp = io.of("/");

  async function announceLeft(roomId, user) {
    const sockets = await nsp.in(roomId).fetchSockets();
    if (!sockets.some((s) => (userOf(s) || {}).userId === user.userId)) {
      nsp.to(roomId).emit("userLeft", user);
    }
  }

  nsp.on("connection", (socket) => {
    let rooms = [];
    // Errors go to the ack when there is one, else to an "error" event.
    const answer = (event, cb, result) => {
      if (cb) cb(result);
      else if (!result.ok) socket.emit("error", { event, message: result.error });
    };
    const inRoom = (roomId) => roomId !== socket.id && socket.rooms.has(roomId);

    socket.on("joinRoom", async (data, cb) => {
      cb = typeof cb === "function" ? cb : null;
      const roomId = text(data && data.roomId);
      const userId = text(data && data.userId);
      const username = text(data && data.username);
      if (!roomId || !userId || !username) {
        return answer("joinRoom", cb, { ok: false, error: "roomId, userId and username are needed" });
      }
      const already = socket.rooms.has(roomId);
      // Another tab of this user already here (this server's sockets)?
      const tab = [...(nsp.adapter.rooms.get(roomId) || [])].some((sid) => {
        const other = nsp.sockets.get(sid);
        return sid !== socket.id && other && (userOf(other) || {}).userId === userId;
      });
      socket.data = { userId, username };
      socket.join(roomId);
      if (!already && !tab) {
        socket.to(roomId).emit("userJoined", { userId, username, message: `${username} joined the chat` });
      }
      const sockets = await nsp.in(roomId).fetchSockets();
      answer("joinRoom", cb, { ok: true, roomId, history: history.get(roomId) || [], online: online(sockets) });
    });

    socket.on("sendMessage", (data, cb) => {
      cb = typeof cb === "function" ? cb : null;
      const roomId = text(data && data.roomId);
      const message = text(data && data.message);
      const user = userOf(socket);
      if (!user || !inRoom(roomId)) {
        return answer("sendMessage", cb, { ok: false, error: "join the room before sending to it" });
      }
      if (!message) return answer("sendMessage", cb, { ok: false, error: "message must not be empty" });
      if (message.length > MAX_MESSAGE) {
        return answer("sendMessage", cb, { ok: false, error: `message is longer than ${MAX_MESSAGE} characters` });
      }
      const m = { id: crypto.randomUUID(), ...user, message, timestamp: new Date().toISOString() };
      const kept = history.get(roomId) || [];
      kept.push(m);
      history.set(roomId, kept.slice(-HISTORY));
      nsp.to(roomId).emit("receiveMessage", m);
      answer("sendMessage", cb, { ok: true, id: m.id, timestamp: m.timestamp });
    });

    socket.on("typing", (data, cb) => {
      cb = typeof cb === "function" ? cb : null;
      const roomId = text(data && data.roomId);
      const user = userOf(socket);
      if (!user || !inRoom(roomId)) return answer("typing", cb, { ok: false, error: "join the room first" });
      socket.to(roomId).emit("userTyping", { username: user.username });
      answer("typing", cb, { ok: true });
    });

    socket.on("leaveRoom", async (data, cb) => {
      cb = typeof cb === "function" ? cb : null;
      const roomId = text(data && data.roomId);
      const user = userOf(socket);
      if (inRoom(roomId)) {
        socket.leave(roomId);
        if (user) await announceLeft(roomId, user);
      }
      answer("leaveRoom", cb, { ok: true, roomId });
    });

    socket.on("echo", (...args) => {
      const cb = typeof args[args.length - 1] === "function" ? args.pop() : null;
      if (cb) cb(...args);
    });

    socket.on("disconnecting", () => {
      rooms = [...socket.rooms].filter((r) => r !== socket.id);
    });
    socket.on("disconnect", async () => {
      const user = userOf(socket);
      if (!user) return;
      for (const roomId of rooms) await announceLeft(roomId, user).catch(() => {});
    });
  });
}

async function main() {
  const pub = createClient({ url: opts.url });
  const sub = pub.duplicate();
  pub.on("error", (err) => process.stderr.write(`pub: ${err.message}\n`));
  sub.on("error", (err) => process.stderr.write(`sub: ${err.message}\n`));
  await Promise.all([pub.connect(), sub.connect()]);
  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    adapter: createAdapter(pub, sub, { requestsTimeout: 5000 }),
    pingInterval: opts.pingInterval || 25000,
    pingTimeout: opts.pingTimeout || 20000,
  });
  setUp(io);
  // The adapter subscribes without waiting; one connection answers in order, so once this
  // subscription is confirmed, the adapter's are too.
  await sub.subscribe(`chat-node-ready-${opts.name || "chat"}`, () => {});
  await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  process.stdout.write(JSON.stringify({ type: "ready", port: httpServer.address().port }) + "\n");

  process.stdin.on("data", () => {});
  process.stdin.on("end", async () => {
    io.close();
    await Promise.allSettled([pub.quit(), sub.quit()]);
    process.exit(0);
  });
}

main().catch((err) => {
  process.stderr.write(`${err && err.stack}\n`);
  process.exit(1);
});
