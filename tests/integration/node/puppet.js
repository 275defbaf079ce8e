#!/usr/bin/env node
// A long-lived Node process that drives official socket.io-client 4.x instances for the Python
// integration tests (see tests/integration/peers.py).
//
// Protocol: one JSON object per line on stdin (a command), one JSON object per line on stdout.
//   command:  {"id": 7, "cmd": "<name>", "client": "<handle>", ...}
//   reply:    {"id": 7, "ok": true, ...}  or  {"id": 7, "ok": false, "error": "..."}
//   report:   {"client": "<handle>", "type": "connect" | "connect_error" | "disconnect" |
//              "event" | "upgrade" | "engine_close", ...}   (unsolicited, in arrival order)
// Binary values travel as {"$bin": "<base64>"} in both directions.
// Modules resolve from tests/js/node_modules (the Python side runs us with NODE_PATH set).
"use strict";

const readline = require("readline");
const { io } = require("socket.io-client");

const clients = new Map(); // handle -> { socket, replies: Map(event -> args), pendingAcks, nextAck }

function write(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

// --- binary <-> JSON ---------------------------------------------------------------------------

function isBinary(v) {
  return Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v);
}

function toBuffer(v) {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

function encode(v) {
  if (v === undefined) return null;
  if (v === null || typeof v !== "object") return v;
  if (isBinary(v)) return { $bin: toBuffer(v).toString("base64") };
  if (v instanceof Error) return { $error: v.message, data: encode(v.data) };
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

// --- clients -----------------------------------------------------------------------------------

function report(handle, type, fields) {
  write(Object.assign({ client: handle, type }, fields));
}

function hookEngine(handle, state, engine) {
  if (!engine || state.engines.has(engine)) return;
  state.engines.add(engine);
  engine.on("upgrade", (transport) => report(handle, "upgrade", { transport: transport.name }));
  engine.on("ping", () => report(handle, "ping", {}));
  engine.on("close", (reason, description) =>
    report(handle, "engine_close", { reason, description: describe(description) }),
  );
  if (state.frozen) freezeEngine(engine);
}

function freezeEngine(engine) {
  // A frozen client keeps its connection open but stops answering the server's pings, like a
  // process stuck in a busy loop: the server must drop it within pingInterval + pingTimeout.
  const send = engine._sendPacket.bind(engine);
  engine._sendPacket = (type, ...rest) => {
    if (type === "pong") return;
    send(type, ...rest);
  };
  // Keep the client's own ping-timeout timer from firing first: only the server should decide.
  engine._resetPingTimeout = () => {};
  engine.clearTimeoutFn(engine._pingTimeoutTimer);
}

function describe(d) {
  if (d === undefined || d === null) return null;
  if (d instanceof Error) return d.message;
  if (typeof d === "object") {
    if (d.description instanceof Error) return d.description.message;
    return d.description !== undefined ? String(d.description) : String(d.context || d);
  }
  return String(d);
}

function connect(msg) {
  const handle = msg.client;
  if (clients.has(handle)) throw new Error(`client ${handle} already exists`);
  const opts = Object.assign({ reconnection: false, forceNew: true, timeout: 5000 }, msg.options);
  if (opts.auth) opts.auth = decode(opts.auth);
  let socket;
  if (msg.share) {
    // A second namespace multiplexed over another handle's Manager (one Engine.IO connection).
    const other = clients.get(msg.share);
    if (!other) throw new Error(`unknown client ${msg.share}`);
    socket = other.socket.io.socket(msg.nsp || "/", { auth: opts.auth });
    if (!socket.active) socket.connect(); // the Socket constructor connects when autoConnect
  } else {
    const base = msg.url.replace(/\/$/, "");
    const nsp = msg.nsp && msg.nsp !== "/" ? msg.nsp : "";
    socket = io(base + nsp, opts);
  }
  const state = {
    socket,
    replies: new Map(),
    echo: new Set(),
    pendingAcks: new Map(),
    nextAck: 1,
    engines: new WeakSet(),
    frozen: false,
    counting: new Map(), // event -> { count, bytes, waiters: [{ count, reply }] }
    bursts: [], // how to fail each emit_burst still waiting for acks
  };
  for (const [event, args] of Object.entries(msg.ack_replies || {})) state.replies.set(event, args);
  clients.set(handle, state);

  const manager = socket.io;
  hookEngine(handle, state, manager.engine);
  manager.on("open", () => hookEngine(handle, state, manager.engine));
  if (msg.urls && msg.urls.length) {
    // Fail over: each reconnection attempt goes to the next server of the list (a client in
    // front of a cluster whose server died comes back on another one).
    let next = 0;
    manager.on("reconnect_attempt", () => {
      if (state.hopTo) {
        manager.uri = state.hopTo; // hop() named the server
        state.hopTo = null;
      } else {
        next = (next + 1) % msg.urls.length;
        manager.uri = msg.urls[next].replace(/\/$/, "");
      }
      report(handle, "reconnect_attempt", { url: manager.uri });
    });
  }

  socket.on("connect", () =>
    report(handle, "connect", {
      id: socket.id,
      transport: manager.engine ? manager.engine.transport.name : null,
      recovered: Boolean(socket.recovered),
    }),
  );
  socket.on("connect_error", (err) =>
    report(handle, "connect_error", {
      message: err.message,
      data: encode(err.data === undefined ? null : err.data),
      description: describe(err.description),
    }),
  );
  socket.on("disconnect", (reason, description) =>
    report(handle, "disconnect", { reason, description: describe(description) }),
  );
  socket.on("disconnect", (reason) => {
    // whoever waits for more (a burst's acks, a count) learns it will not come
    for (const counter of state.counting.values()) {
      for (const w of counter.waiters.splice(0)) {
        w.reply({ ok: false, error: `disconnected (${reason}) after ${counter.count} ${w.event}` });
      }
    }
    for (const fail of state.bursts.splice(0)) fail(reason);
  });
  socket.onAny((event, ...args) => {
    const counter = state.counting.get(event);
    if (counter) {
      // counted, not reported: a sustained broadcast would flood stdout otherwise
      counter.count += 1;
      for (const a of args) counter.bytes += sizeOf(a);
      counter.waiters = counter.waiters.filter((w) => {
        if (counter.count < w.count) return true;
        w.reply({ ok: true, count: counter.count, bytes: counter.bytes });
        return false;
      });
      return;
    }
    let ackId = null;
    if (args.length && typeof args[args.length - 1] === "function") {
      const ack = args.pop();
      if (state.echo.has(event)) {
        ack(...args);
      } else if (state.replies.has(event)) {
        ack(...decode(state.replies.get(event)));
      } else {
        ackId = state.nextAck++;
        state.pendingAcks.set(ackId, ack);
      }
    }
    report(handle, "event", { event, args: encode(args), ack_id: ackId });
  });
  return {};
}

function sizeOf(v) {
  if (typeof v === "string") return Buffer.byteLength(v);
  if (isBinary(v)) return toBuffer(v).length;
  return Buffer.byteLength(JSON.stringify(v === undefined ? null : v));
}

function get(msg) {
  const state = clients.get(msg.client);
  if (!state) throw new Error(`unknown client ${msg.client}`);
  return state;
}

function emitOne(socket, event, args, ackCb, opts) {
  let target = socket;
  if (opts.volatile) target = target.volatile;
  if (ackCb && opts.timeout != null) target = target.timeout(opts.timeout);
  const all = decode(args || []);
  if (ackCb) all.push(ackCb);
  target.emit(event, ...all);
}

// Commands that answer later (an ack) return undefined and call reply() themselves.
const commands = {
  connect,
  emit(msg, reply) {
    const { socket } = get(msg);
    if (!msg.ack) {
      emitOne(socket, msg.event, msg.args, null, msg);
      return {};
    }
    const cb =
      msg.timeout != null
        ? (err, ...res) =>
            err
              ? reply({ ok: false, error: err.message, timeout: true })
              : reply({ ok: true, ack: encode(res) })
        : (...res) => reply({ ok: true, ack: encode(res) });
    emitOne(socket, msg.event, msg.args, cb, msg);
    return undefined;
  },
  emit_batch(msg) {
    // Many emits in one synchronous run: over polling the client sends them in one POST.
    const { socket } = get(msg);
    for (const item of msg.items) emitOne(socket, item.event, item.args, null, item);
    return {};
  },
  on_ack_reply(msg) {
    const state = get(msg);
    if (msg.echo) state.echo.add(msg.event);
    else state.replies.set(msg.event, msg.args || []);
    return {};
  },
  ack(msg) {
    const state = get(msg);
    const ack = state.pendingAcks.get(msg.ack_id);
    if (!ack) throw new Error(`no pending ack ${msg.ack_id}`);
    state.pendingAcks.delete(msg.ack_id);
    ack(...decode(msg.args || []));
    return {};
  },
  state(msg) {
    const { socket } = get(msg);
    const engine = socket.io.engine;
    return { state: {
      connected: socket.connected,
      id: socket.id || null,
      engine_id: engine ? engine.id || null : null,
      transport: engine && engine.transport ? engine.transport.name : null,
      ready_state: engine ? engine.readyState : null,
    } };
  },
  disconnect(msg) {
    get(msg).socket.disconnect();
    return {};
  },
  close_engine(msg) {
    // Close the whole Engine.IO connection (as when a tab goes away): the server sees "transport close".
    const { socket } = get(msg);
    if (socket.io.engine) socket.io.engine.close();
    return {};
  },
  drop(msg) {
    // Cut the TCP connection without a close frame (network loss / killed process).
    const { socket } = get(msg);
    const transport = socket.io.engine && socket.io.engine.transport;
    const ws = transport && transport.ws;
    if (ws && ws._socket) ws._socket.destroy();
    else throw new Error("drop needs a websocket transport");
    return {};
  },
  hop(msg) {
    // Leave the current connection without telling the server (no close packet, no close
    // frame: as when a network path dies), then reconnect to msg.url (or the failover list's
    // next server). The old server still holds the session until its ping timeout.
    const state = get(msg);
    const manager = state.socket.io;
    const engine = manager.engine;
    const transport = engine && engine.transport;
    if (!transport) throw new Error("hop needs a connection");
    if (msg.url) manager.uri = state.hopTo = msg.url.replace(/\/$/, "");
    transport.doClose = () => {};
    engine._onClose("transport error");
    return {};
  },
  freeze(msg) {
    const state = get(msg);
    state.frozen = true;
    if (state.socket.io.engine) freezeEngine(state.socket.io.engine);
    return {};
  },
  emit_burst(msg, reply) {
    // `count` acked emits of `event` (with the index as argument) in one synchronous run, as
    // an offline buffer flushes on reconnect; replies once every ack came back, in order.
    const state = get(msg);
    const { socket } = state;
    const acks = new Array(msg.count);
    let received = 0;
    let done = false;
    state.bursts.push((reason) => {
      if (!done) { done = true; reply({ ok: false, error: `disconnected (${reason}) after ${received} acks` }); }
    });
    for (let i = 0; i < msg.count; i++) {
      const args = (msg.args ? decode(msg.args) : []).concat([i]);
      socket.emit(msg.event, ...args, (...res) => {
        acks[i] = res.length === 1 ? encode(res[0]) : encode(res);
        received += 1;
        if (received === msg.count && !done) { done = true; reply({ ok: true, acks }); }
      });
    }
    return undefined;
  },
  count_events(msg) {
    // count `event` from now on instead of reporting each one
    get(msg).counting.set(msg.event, { count: 0, bytes: 0, waiters: [] });
    return {};
  },
  wait_count(msg, reply) {
    const counter = get(msg).counting.get(msg.event);
    if (!counter) throw new Error(`not counting ${msg.event}`);
    if (counter.count >= msg.count) return { count: counter.count, bytes: counter.bytes };
    counter.waiters.push({ count: msg.count, event: msg.event, reply });
    return undefined;
  },
  counted(msg) {
    const counter = get(msg).counting.get(msg.event);
    if (!counter) throw new Error(`not counting ${msg.event}`);
    return { count: counter.count, bytes: counter.bytes };
  },
  stall(msg) {
    // Stop reading the WebSocket's TCP socket (a reader that is alive but takes nothing):
    // the kernel buffers fill and the server's writes back up.
    const { socket } = get(msg);
    const transport = socket.io.engine && socket.io.engine.transport;
    const ws = transport && transport.ws;
    if (!ws || !ws._socket) throw new Error("stall needs a websocket transport");
    ws._socket.pause();
    return {};
  },
  forget(msg) {
    const state = get(msg);
    state.socket.removeAllListeners();
    state.socket.offAny();
    state.socket.disconnect();
    if (state.socket.io.engine) state.socket.io.engine.close();
    clients.delete(msg.client);
    return {};
  },
  exit() {
    for (const { socket } of clients.values()) {
      socket.removeAllListeners();
      socket.disconnect();
      if (socket.io.engine) socket.io.engine.close();
    }
    clients.clear();
    setImmediate(() => process.exit(0));
    return {};
  },
};

function handle(line) {
  let msg;
  try {
    msg = JSON.parse(line);
  } catch (e) {
    write({ id: null, ok: false, error: `bad command line: ${e.message}` });
    return;
  }
  let answered = false;
  const reply = (fields) => {
    if (answered) return;
    answered = true;
    write(Object.assign({ id: msg.id }, fields));
  };
  try {
    const fn = Object.prototype.hasOwnProperty.call(commands, msg.cmd) ? commands[msg.cmd] : null;
    if (!fn) throw new Error(`unknown command ${msg.cmd}`);
    const result = fn(msg, reply);
    if (result !== undefined) reply(Object.assign({ ok: true }, result));
  } catch (e) {
    reply({ ok: false, error: e.message });
  }
}

readline.createInterface({ input: process.stdin }).on("line", handle);
process.stdin.on("end", () => process.exit(0));
write({ id: 0, ok: true, ready: true, version: require("socket.io-client/package.json").version });
