import { useState } from "react";
import Chat from "./Chat.jsx";
import { saveName, saveRoom, savedName, userIdFor } from "./identity.js";

const MAX_NAME = 32;

function NameForm({ onDone }) {
  const [name, setName] = useState("");
  const submit = (event) => {
    event.preventDefault();
    const username = name.trim();
    if (username) onDone(username);
  };
  return (
    <main className="welcome">
      <form className="card" onSubmit={submit}>
        <h1>sockjet chat</h1>
        <p>Choose a name to start chatting.</p>
        <input
          data-testid="name-input"
          autoFocus
          placeholder="Your name"
          maxLength={MAX_NAME}
          value={name}
          onChange={(e) => setName(e.target.value)}
        />
        <button data-testid="name-submit" type="submit" disabled={!name.trim()}>
          Continue
        </button>
      </form>
    </main>
  );
}

function restoredUser() {
  const username = savedName();
  return username ? { username, userId: userIdFor(username) } : null;
}

export default function App() {
  const [user, setUser] = useState(restoredUser);
  if (!user) {
    return (
      <NameForm
        onDone={(username) => {
          saveName(username);
          setUser({ username, userId: userIdFor(username) });
        }}
      />
    );
  }
  return (
    <Chat
      user={user}
      onSignOut={() => {
        saveName(null);
        saveRoom(null);
        setUser(null);
      }}
    />
  );
}
