import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` serves the front end on http://localhost:5173 with hot reload and forwards
// /socket.io/ (polling and WebSocket) to a `sockjet chat` on port 5000: the page and the
// server share one origin, so no CORS setting is needed. `npm run build` writes dist/,
// which `sockjet chat` serves itself.
export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      "/socket.io": { target: "http://127.0.0.1:5000", ws: true },
    },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
  },
});
