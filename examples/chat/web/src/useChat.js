// The chat's client state: one socket.io-client connection, the room this tab is in, its
// messages, who is online there and who is typing. Event names and payloads are those of
// sockjet.chat.app (docs/chat.md).

import { useCallback, useEffect, useRef, useState } from "react";
import { io } from "socket.io-client";
import { saveRoom, savedRoom } from "./identity.js";

const ACK_TIMEOUT_MS = 5000;
const TYPING_SHOWN_MS = 3000;
const TYPING_THROTTLE_MS = 1500;

let systemCount = 0;
const systemLine = (text) => ({
  kind: "system",
  id: `system-${++systemCount}`,
  text,
  timestamp: new Date().toISOString(),
});
const chatLine = (m) => ({ kind: "message", ...m });

// Previous lines + history + what arrived while joining, each message once, in time order.
function merge(previous, history, buffered) {
  const seen = new Set();
  const lines = [];
  for (const line of [...previous, ...history.map(chatLine), ...buffered.map(chatLine)]) {
    if (seen.has(line.id)) continue;
    seen.add(line.id);
    lines.push(line);
  }
  // ISO 8601 UTC strings sort as times; sort() is stable, so equal times keep their order.
  return lines.sort((a, b) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0));
}

const withUser = (list, u) =>
  list.some((o) => o.userId === u.userId) ? list : [...list, { userId: u.userId, username: u.username }];
const withoutUser = (list, u) => list.filter((o) => o.userId !== u.userId);
const leftLine = (u) => systemLine(`${u.username} left the chat`);

function connectionStatus(socket) {
  if (typeof navigator !== "undefined" && navigator.onLine === false) return "offline";
  if (socket.connected) return "connected";
  return socket.active ? "reconnecting" : "offline";
}

export function useChat(user) {
  const socketRef = useRef(null);
  const roomRef = useRef(null); // the room this tab is in (or joining)
  const bufferRef = useRef(null); // room events received while a join is in flight
  const switchingRef = useRef(false); // leaving a room: its last events are dropped
  const joinSeqRef = useRef(0); // only the latest join's answer counts
  const lastTypingRef = useRef(0);
  const [status, setStatus] = useState("connecting");
  const [room, setRoom] = useState(null);
  const [joining, setJoining] = useState(false);
  const [messages, setMessages] = useState([]);
  const [online, setOnline] = useState([]);
  const [typing, setTyping] = useState({}); // username -> time its notice expires
  const [error, setError] = useState(null);

  const emitJoin = useCallback(
    (roomId, rejoin) => {
      const socket = socketRef.current;
      const seq = ++joinSeqRef.current;
      bufferRef.current = [];
      setJoining(true);
      const payload = { roomId, userId: user.userId, username: user.username };
      socket.timeout(ACK_TIMEOUT_MS).emit("joinRoom", payload, (err, res) => {
        // Left, switched rooms or joined again (after a reconnection) meanwhile.
        if (seq !== joinSeqRef.current || roomRef.current !== roomId) return;
        const buffered = bufferRef.current || [];
        bufferRef.current = null;
        setJoining(false);
        if (err) {
          setError(`could not join ${roomId}: no answer from the server`);
          return; // the next (re)connection joins again
        }
        if (!res.ok) {
          setError(res.error);
          roomRef.current = null;
          setRoom(null);
          saveRoom(null);
          return;
        }
        // The ack's list was taken when we joined: what arrived since is replayed on top.
        let users = res.online;
        const received = [];
        const notices = [];
        for (const { event, data } of buffered) {
          if (event === "receiveMessage") {
            received.push(data);
          } else if (event === "userJoined") {
            users = withUser(users, data);
            notices.push(systemLine(data.message));
          } else {
            users = withoutUser(users, data);
            notices.push(leftLine(data));
          }
        }
        setOnline(users);
        setMessages((previous) => [...merge(rejoin ? previous : [], res.history, received), ...notices]);
      });
    },
    [user],
  );

  useEffect(() => {
    if (!user) return undefined;
    const socket = io({ reconnectionDelay: 500, reconnectionDelayMax: 3000 });
    socketRef.current = socket;
    const update = () => setStatus(connectionStatus(socket));

    socket.on("connect", () => {
      update();
      switchingRef.current = false; // a new connection is in no room yet
      if (roomRef.current) emitJoin(roomRef.current, true); // after a reconnection too
    });
    socket.on("disconnect", update);
    socket.on("connect_error", update);
    socket.io.on("reconnect_attempt", update);
    window.addEventListener("online", update);
    window.addEventListener("offline", update);

    // While a join is in flight, room events wait for its ack (see emitJoin).
    const ignored = () => !roomRef.current || switchingRef.current;
    const buffering = (event, data) => {
      if (!bufferRef.current) return false;
      bufferRef.current.push({ event, data });
      return true;
    };
    socket.on("receiveMessage", (m) => {
      if (ignored()) return;
      setTyping(({ [m.username]: _, ...rest }) => rest);
      if (buffering("receiveMessage", m)) return;
      setMessages((lines) => (lines.some((l) => l.id === m.id) ? lines : [...lines, chatLine(m)]));
    });
    socket.on("userJoined", (u) => {
      if (ignored() || buffering("userJoined", u)) return;
      setOnline((list) => withUser(list, u));
      setMessages((lines) => [...lines, systemLine(u.message)]);
    });
    socket.on("userLeft", (u) => {
      setTyping(({ [u.username]: _, ...rest }) => rest);
      if (ignored() || buffering("userLeft", u)) return;
      setOnline((list) => withoutUser(list, u));
      setMessages((lines) => [...lines, leftLine(u)]);
    });
    socket.on("userTyping", ({ username }) => {
      if (ignored() || username === user.username) return;
      setTyping((t) => ({ ...t, [username]: Date.now() + TYPING_SHOWN_MS }));
    });
    socket.on("error", (e) => {
      if (e && e.id) {
        setMessages((lines) => lines.map((l) => (l.id === e.id ? { ...l, failed: true } : l)));
        setError(e.message);
      } else if (e) {
        // Errors about events sent with an ack come back in the ack; this is the rest (typing).
        setError(e.message);
      }
    });

    const restored = savedRoom();
    if (restored) {
      roomRef.current = restored; // joined on connect
      setRoom(restored);
    }
    return () => {
      window.removeEventListener("online", update);
      window.removeEventListener("offline", update);
      socket.removeAllListeners();
      socket.io.removeAllListeners();
      socket.disconnect();
      socketRef.current = null;
      roomRef.current = null;
      bufferRef.current = null;
    };
  }, [user, emitJoin]);

  // Typing notices expire on their own.
  useEffect(() => {
    const names = Object.keys(typing);
    if (names.length === 0) return undefined;
    const timer = setInterval(() => {
      const now = Date.now();
      setTyping((t) => {
        const left = Object.fromEntries(Object.entries(t).filter(([, until]) => until > now));
        return Object.keys(left).length === Object.keys(t).length ? t : left;
      });
    }, 500);
    return () => clearInterval(timer);
  }, [typing]);

  const join = useCallback(
    (roomId) => {
      const socket = socketRef.current;
      if (!socket || !roomId || roomRef.current === roomId) return;
      const previous = roomRef.current;
      roomRef.current = roomId;
      joinSeqRef.current += 1; // an answer still due for another join is stale
      bufferRef.current = null;
      setRoom(roomId);
      saveRoom(roomId);
      setMessages([]);
      setOnline([]);
      setTyping({});
      setError(null);
      if (!socket.connected) return; // joined on (re)connection
      if (!previous) {
        emitJoin(roomId, false);
        return;
      }
      // The leave's ack comes after the last event of the old room: join once it is in.
      switchingRef.current = true;
      setJoining(true);
      socket.timeout(ACK_TIMEOUT_MS).emit("leaveRoom", { roomId: previous }, () => {
        switchingRef.current = false;
        if (roomRef.current === roomId && socket.connected) emitJoin(roomId, false);
      });
    },
    [emitJoin],
  );

  const leave = useCallback(() => {
    const socket = socketRef.current;
    const roomId = roomRef.current;
    if (!socket || !roomId) return;
    roomRef.current = null;
    joinSeqRef.current += 1;
    bufferRef.current = null;
    setRoom(null);
    saveRoom(null);
    setJoining(false);
    setMessages([]);
    setOnline([]);
    setTyping({});
    if (socket.connected) socket.emit("leaveRoom", { roomId }, () => {});
  }, []);

  const send = useCallback((text) => {
    const socket = socketRef.current;
    const roomId = roomRef.current;
    if (!socket || !socket.connected || !roomId) {
      return Promise.resolve({ ok: false, error: "not connected" });
    }
    return new Promise((resolve) => {
      socket.timeout(ACK_TIMEOUT_MS).emit("sendMessage", { roomId, message: text }, (err, res) => {
        resolve(err ? { ok: false, error: "no answer from the server" } : res);
      });
    });
  }, []);

  const notifyTyping = useCallback(() => {
    const socket = socketRef.current;
    const now = Date.now();
    if (!socket || !socket.connected || !roomRef.current) return;
    if (now - lastTypingRef.current < TYPING_THROTTLE_MS) return;
    lastTypingRef.current = now;
    socket.emit("typing", { roomId: roomRef.current });
  }, []);

  return {
    status,
    room,
    joining,
    messages,
    online,
    typing: Object.keys(typing).sort(),
    error,
    dismissError: () => setError(null),
    setError,
    join,
    leave,
    send,
    notifyTyping,
  };
}
