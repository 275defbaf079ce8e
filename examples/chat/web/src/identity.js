// Who this tab is. The name and the room are kept per tab (sessionStorage): they survive a
// reload, and two tabs can be two people. The user id is kept per name for the whole browser
// (localStorage), so one name open in two tabs is one user, shown once in "online".

const NAME_KEY = "sockjet-chat:name";
const ROOM_KEY = "sockjet-chat:room";
const IDS_KEY = "sockjet-chat:user-ids";

function read(storage, key) {
  try {
    return storage.getItem(key);
  } catch {
    return null; // storage disabled: the tab just forgets on reload
  }
}

function write(storage, key, value) {
  try {
    if (value === null) storage.removeItem(key);
    else storage.setItem(key, value);
  } catch {
    // storage disabled or full: nothing to do
  }
}

function randomId() {
  // getRandomValues works on plain http:// pages too (randomUUID needs a secure context).
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function userIdFor(username) {
  let ids = {};
  try {
    ids = JSON.parse(read(localStorage, IDS_KEY) || "{}") || {};
  } catch {
    ids = {};
  }
  const key = username.toLowerCase();
  if (typeof ids[key] !== "string") {
    ids[key] = randomId();
    write(localStorage, IDS_KEY, JSON.stringify(ids));
  }
  return ids[key];
}

export const savedName = () => read(sessionStorage, NAME_KEY) || "";
export const saveName = (name) => write(sessionStorage, NAME_KEY, name);
export const savedRoom = () => read(sessionStorage, ROOM_KEY) || "";
export const saveRoom = (room) => write(sessionStorage, ROOM_KEY, room);
