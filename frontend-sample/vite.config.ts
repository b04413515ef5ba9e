import { defineConfig } from "vite";

// Built into the Python package (gateway/web/inbox/), which the gateway serves at /inbox, so an
// installed gateway has the inbox without npm; `npm run dev` proxies the API to a local gateway.
export default defineConfig({
  base: "/inbox/",
  build: {
    outDir: "../gateway/web/inbox",
    emptyOutDir: true,
    reportCompressedSize: false,
  },
  server: {
    proxy: {
      "/graphql": { target: "http://127.0.0.1:8000", ws: true },
    },
  },
});
