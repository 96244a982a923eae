// What `npm pack` ships, and that the entry points resolve through the package's own exports.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

test("the package's exports resolve: the platform build and the Node build", async () => {
  const platform = await import("@promptkeeper/sdk");
  const node = await import("@promptkeeper/sdk/node");
  assert.equal(typeof platform.PromptKeeper, "function");
  assert.equal(platform.fileSnapshot, undefined, "no file system in the platform build");
  assert.equal(typeof node.fileSnapshot, "function");
  assert.equal(node.PromptKeeper, platform.PromptKeeper);
});

test("the platform build imports no Node module", () => {
  const dist = join(root, "dist");
  for (const file of readdirSync(dist).filter((f) => f.endsWith(".js") && f !== "node.js")) {
    const source = readFileSync(join(dist, file), "utf8");
    assert.doesNotMatch(source, /from\s+["']node:|require\(|process\./, file);
  }
});

test("npm pack ships the compiled code and types, not the sources or tests", () => {
  const out = JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: root, encoding: "utf8" }));
  const files = out[0].files.map((f) => f.path);
  for (const expected of ["dist/index.js", "dist/index.d.ts", "dist/node.js", "dist/node.d.ts", "package.json", "README.md"]) {
    assert.ok(files.includes(expected), `${expected} in ${files}`);
  }
  assert.deepEqual(files.filter((f) => f.startsWith("src/") || f.startsWith("test/") || f.includes("node_modules")), []);
});
