// Drives the official engine.io-parser (v5) for tests/interop/test_engineio_parser_interop.py.
//
// Reads one JSON request on stdin, writes one JSON response on stdout. Packets travel as
// {type, text} for string data, {type, binary: <base64>} for binary data, and {type} without
// data; a WebSocket frame travels as {text} or {binary: <base64>}.
"use strict";

const parser = require("engine.io-parser");

const toNodePacket = (p) => {
  if ("binary" in p) return { type: p.type, data: Buffer.from(p.binary, "base64") };
  if ("text" in p) return { type: p.type, data: p.text };
  return { type: p.type };
};

const fromNodePacket = (p) => {
  if (p.data === undefined) return { type: p.type };
  if (typeof p.data === "string") return { type: p.type, text: p.data };
  return { type: p.type, binary: Buffer.from(p.data).toString("base64") };
};

const toFrame = (encoded) =>
  typeof encoded === "string"
    ? { text: encoded }
    : { binary: Buffer.from(encoded).toString("base64") };

const fromFrame = (frame) =>
  "binary" in frame ? Buffer.from(frame.binary, "base64") : frame.text;

// encodePacket and encodePayload call back synchronously in Node.
const encodePacket = (packet, supportsBinary) => {
  let out;
  parser.encodePacket(toNodePacket(packet), supportsBinary, (encoded) => (out = encoded));
  return toFrame(out);
};

const encodePayload = (packets) => {
  let out;
  parser.encodePayload(packets.map(toNodePacket), (encoded) => (out = encoded));
  return out;
};

const main = (request) => ({
  protocol: parser.protocol,
  encoded_binary: request.packets.map((p) => encodePacket(p, true)),
  encoded_base64: request.packets.map((p) => encodePacket(p, false)),
  payloads: request.payloads.map(encodePayload),
  decoded_frames: request.frames.map((f) => fromNodePacket(parser.decodePacket(fromFrame(f)))),
  decoded_bodies: request.bodies.map((b) => parser.decodePayload(b).map(fromNodePacket)),
});

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  process.stdout.write(JSON.stringify(main(JSON.parse(input))));
});
