import { useEffect, useRef, useState } from "react";
import { useChat } from "./useChat.js";

const SUGGESTED_ROOMS = ["general", "random"];
const STATUS_LABELS = {
  connecting: "connecting…",
  connected: "connected",
  reconnecting: "reconnecting…",
  offline: "offline",
};

const timeOf = (iso) =>
  new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

function RoomPicker({ room, onJoin, onLeave }) {
  const [name, setName] = useState("");
  const submit = (event) => {
    event.preventDefault();
    const roomId = name.trim();
    if (roomId) {
      onJoin(roomId);
      setName("");
    }
  };
  return (
    <section className="rooms">
      <h2>Rooms</h2>
      <form onSubmit={submit}>
        <input
          data-testid="room-input"
          placeholder="Room name"
          maxLength={64}
          value={name}
          onChange={(e) => setName(e.target.value)}
        />
        <button data-testid="join-button" type="submit" disabled={!name.trim()}>
          Join
        </button>
      </form>
      <ul>
        {SUGGESTED_ROOMS.map((r) => (
          <li key={r}>
            <button className={r === room ? "link current" : "link"} onClick={() => onJoin(r)}>
              # {r}
            </button>
          </li>
        ))}
      </ul>
      {room && (
        <button data-testid="leave-button" className="secondary" onClick={onLeave}>
          Leave # {room}
        </button>
      )}
    </section>
  );
}

function OnlineList({ online, me }) {
  return (
    <section className="online">
      <h2>Online ({online.length})</h2>
      <ul data-testid="online">
        {online.map((u) => (
          <li key={u.userId} data-testid="online-user">
            <span className="dot" /> {u.username}
            {u.userId === me.userId && <span className="muted"> (you)</span>}
          </li>
        ))}
      </ul>
    </section>
  );
}

function MessageList({ messages, me }) {
  const listRef = useRef(null);
  useEffect(() => {
    const list = listRef.current;
    if (list) list.scrollTop = list.scrollHeight;
  }, [messages]);
  return (
    <ol className="messages" data-testid="messages" ref={listRef}>
      {messages.map((line) =>
        line.kind === "system" ? (
          <li key={line.id} className="system" data-testid="system-line">
            {line.text}
          </li>
        ) : (
          <li
            key={line.id}
            data-testid="message"
            className={(line.userId === me.userId ? "mine" : "") + (line.failed ? " failed" : "")}
          >
            <div className="meta">
              <strong>{line.username}</strong> <time dateTime={line.timestamp}>{timeOf(line.timestamp)}</time>
              {line.failed && <span className="warn"> not saved</span>}
            </div>
            {/* React escapes text: what people type is never parsed as HTML. */}
            <p data-testid="message-text">{line.message}</p>
          </li>
        ),
      )}
    </ol>
  );
}

function Composer({ disabled, onSend, onTyping }) {
  const [text, setText] = useState("");
  const [sending, setSending] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    const message = text.trim();
    if (!message || sending) return;
    setSending(true);
    const result = await onSend(message);
    setSending(false);
    if (result.ok) setText("");
  };
  return (
    <form className="composer" onSubmit={submit}>
      <input
        data-testid="message-input"
        placeholder={disabled ? "Join a room to chat" : "Write a message"}
        value={text}
        disabled={disabled}
        onChange={(e) => {
          setText(e.target.value);
          onTyping();
        }}
      />
      <button data-testid="send-button" type="submit" disabled={disabled || sending || !text.trim()}>
        Send
      </button>
    </form>
  );
}

function typingText(names) {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return "several people are typing…";
}

export default function Chat({ user, onSignOut }) {
  const chat = useChat(user);
  const canSend = chat.status === "connected" && Boolean(chat.room) && !chat.joining;
  const send = async (message) => {
    const result = await chat.send(message);
    if (!result.ok) chat.setError(result.error);
    return result;
  };
  return (
    <div className="app">
      <header>
        <h1>sockjet chat</h1>
        <span className="room-title" data-testid="room-title">
          {chat.room ? `# ${chat.room}` : "no room"}
        </span>
        <span className={`status ${chat.status}`} data-testid="status" data-status={chat.status}>
          {STATUS_LABELS[chat.status]}
        </span>
        <span className="me">
          {user.username}{" "}
          <button className="link" onClick={() => { chat.leave(); onSignOut(); }}>
            change name
          </button>
        </span>
      </header>
      <aside>
        <RoomPicker room={chat.room} onJoin={chat.join} onLeave={chat.leave} />
        {chat.room && <OnlineList online={chat.online} me={user} />}
      </aside>
      <main>
        {chat.error && (
          <div className="error" role="alert" data-testid="error">
            {chat.error}
            <button className="link" onClick={chat.dismissError} aria-label="dismiss">
              ×
            </button>
          </div>
        )}
        {chat.room ? (
          <MessageList messages={chat.messages} me={user} />
        ) : (
          <p className="empty">Join a room on the left to start chatting.</p>
        )}
        <div className="typing" data-testid="typing">
          {typingText(chat.typing)}
        </div>
        <Composer disabled={!canSend} onSend={send} onTyping={chat.notifyTyping} />
      </main>
    </div>
  );
}
