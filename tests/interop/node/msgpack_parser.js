// Drives the official socket.io-msgpack-parser (3.x, on notepack.io) for
// tests/interop/test_socketio_parser_interop.py.
//
// Reads one JSON request on stdin, writes one JSON response on stdout:
//   request:  {encode: [packet...], decode: [<base64>...]}
//   response: {protocol, encoded: [<base64>...], decoded: [{packet} | {error}...]}
// A packet is an object whose keys are applied in the order given (so extra keys such as the
// client's "options" and their position are under the test's control). Inside values,
// {"$binary": <base64>} is a Buffer (msgpack bin), {"$arraybuffer": <base64>} a Uint8Array
// (notepack ext type 0) and {"$undefined": true} is undefined; decoded Buffers and ArrayBuffers
// come back as {"$binary": <base64>}, Dates as {"$date": <ms>}.
"use strict";

const { Encoder, Decoder, protocol } = require("socket.io-msgpack-parser");

const isObject = (v) => v !== null && typeof v === "object";

const toNode = (v) => {
  if (Array.isArray(v)) return v.map(toNode);
  if (!isObject(v)) return v;
  if ("$binary" in v) return Buffer.from(v.$binary, "base64");
  if ("$arraybuffer" in v) return new Uint8Array(Buffer.from(v.$arraybuffer, "base64"));
  if ("$undefined" in v) return undefined;
  const out = {};
  for (const [key, value] of Object.entries(v)) out[key] = toNode(value);
  return out;
};

const bytesOf = (v) =>
  v instanceof ArrayBuffer ? Buffer.from(v) : Buffer.from(v.buffer, v.byteOffset, v.byteLength);

const fromNode = (v) => {
  if (v === undefined) return { $undefined: true };
  if (v instanceof Date) return { $date: v.getTime() };
  if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) {
    return { $binary: bytesOf(v).toString("base64") };
  }
  if (Array.isArray(v)) return v.map(fromNode);
  if (!isObject(v)) return v;
  const out = {};
  for (const [key, value] of Object.entries(v)) out[key] = fromNode(value);
  return out;
};

const fromNodePacket = (p) => {
  const out = { type: p.type, nsp: p.nsp };
  if (p.data !== undefined) out.data = fromNode(p.data);
  if (p.id !== undefined) out.id = p.id;
  return out;
};

const decode = (b64) => {
  const decoder = new Decoder();
  const decoded = [];
  decoder.on("decoded", (packet) => decoded.push(packet));
  try {
    decoder.add(Buffer.from(b64, "base64"));
  } catch (err) {
    return { error: String(err && err.message) };
  }
  return { packet: fromNodePacket(decoded[0]), count: decoded.length };
};

const main = (request) => {
  const encoder = new Encoder();
  return {
    protocol,
    encoded: (request.encode || []).map((p) => {
      const encoded = encoder.encode(toNode(p));
      if (encoded.length !== 1) throw new Error("expected one buffer per packet");
      return bytesOf(encoded[0]).toString("base64");
    }),
    decoded: (request.decode || []).map(decode),
  };
};

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  process.stdout.write(JSON.stringify(main(JSON.parse(input))));
});
