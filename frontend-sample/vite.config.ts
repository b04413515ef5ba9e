import { defineConfig } from "vite";

// The gateway serves the built app at /inbox; `npm run dev` proxies the API to a local gateway.
export default defineConfig({
  base: "/inbox/",
  server: {
    proxy: {
      "/graphql": { target: "http://127.0.0.1:8000", ws: true },
    },
  },
});
