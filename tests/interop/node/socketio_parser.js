// Drives the official socket.io-parser (Socket.IO protocol v5, default JSON parser) for
// tests/interop/test_socketio_parser_interop.py.
//
// Reads one JSON request on stdin, writes one JSON response on stdout:
//   request:  {encode: [packet...], decode: [[frame...]...]}
//   response: {protocol, encoded: [[frame...]...], decoded: [{packet} | {pending} | {error}...]}
// A packet is {type, nsp, data?, id?}; keys are applied in the order given. Frames are {text} or
// {binary: <base64>}. Inside data, {"$binary": <base64>} is a Buffer and {"$undefined": true}
// is undefined; Node's binary values come back as {"$binary": <base64>}.
"use strict";

const { Encoder, Decoder, protocol } = require("socket.io-parser");

const isObject = (v) => v !== null && typeof v === "object";

const toNode = (v) => {
  if (Array.isArray(v)) return v.map(toNode);
  if (!isObject(v)) return v;
  if ("$binary" in v) return Buffer.from(v.$binary, "base64");
  if ("$undefined" in v) return undefined;
  const out = {};
  for (const [key, value] of Object.entries(v)) out[key] = toNode(value);
  return out;
};

const bytesOf = (v) =>
  v instanceof ArrayBuffer ? Buffer.from(v) : Buffer.from(v.buffer, v.byteOffset, v.byteLength);

const fromNode = (v) => {
  if (v === undefined) return { $undefined: true };
  if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) {
    return { $binary: bytesOf(v).toString("base64") };
  }
  if (Array.isArray(v)) return v.map(fromNode);
  if (!isObject(v)) return v;
  const out = {};
  for (const [key, value] of Object.entries(v)) out[key] = fromNode(value);
  return out;
};

const toNodePacket = (p) => {
  const out = {};
  for (const [key, value] of Object.entries(p)) out[key] = key === "data" ? toNode(value) : value;
  return out;
};

const fromNodePacket = (p) => {
  const out = { type: p.type, nsp: p.nsp };
  if (p.data !== undefined) out.data = fromNode(p.data);
  if (p.id !== undefined) out.id = p.id;
  return out;
};

const toFrame = (encoded) =>
  typeof encoded === "string" ? { text: encoded } : { binary: bytesOf(encoded).toString("base64") };

const fromFrame = (frame) =>
  "binary" in frame ? Buffer.from(frame.binary, "base64") : frame.text;

const decode = (frames) => {
  const decoder = new Decoder();
  const decoded = [];
  decoder.on("decoded", (packet) => decoded.push(packet));
  try {
    for (const frame of frames) decoder.add(fromFrame(frame));
  } catch (err) {
    return { error: String(err && err.message) };
  }
  if (decoded.length === 0) return { pending: true };
  return { packet: fromNodePacket(decoded[0]), count: decoded.length };
};

const main = (request) => {
  const encoder = new Encoder();
  return {
    protocol,
    encoded: (request.encode || []).map((p) => encoder.encode(toNodePacket(p)).map(toFrame)),
    decoded: (request.decode || []).map(decode),
  };
};

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  process.stdout.write(JSON.stringify(main(JSON.parse(input))));
});
