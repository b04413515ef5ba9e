import { defineConfig } from "vite";
import { viteSingleFile } from "vite-plugin-singlefile";

// One self-contained page (scripts, styles and fonts inlined): the gateway answers it at GET
// /graphql, where a browser sends no token, so nothing else has to be served without one.
export default defineConfig({
  plugins: [viteSingleFile()],
  build: {
    outDir: "../gateway/web/graphiql",
    emptyOutDir: true,
    reportCompressedSize: false,
    rollupOptions: {
      // React libraries mark modules "use client", which means nothing in a page without a server.
      onwarn(warning, warn) {
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
      },
    },
  },
});
