// Bundles the example page (browser/) into dist/page with esbuild: one ES module plus its HTML.
import { copyFileSync, mkdirSync } from "node:fs";
import { build } from "esbuild";

mkdirSync("dist/page", { recursive: true });
await build({
  entryPoints: ["browser/main.ts"],
  outfile: "dist/page/app.js",
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "browser",
  sourcemap: true,
  minify: true,
  logLevel: "warning",
});
copyFileSync("browser/index.html", "dist/page/index.html");
