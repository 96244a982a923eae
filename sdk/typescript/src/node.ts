/**
 * The Node entry point: everything in the platform build, plus `fileSnapshot(path)`, the on-disk
 * last-known-good copy of every prompt fetched. Written atomically (a temporary file in the same
 * directory, fsync, rename), so a crash mid-write leaves the previous snapshot intact.
 */

import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { randomUUID } from "node:crypto";
import type { SnapshotStore } from "./client.js";
import type { StoredPrompt } from "./prompt.js";

export * from "./index.js";

const FORMAT = 1;

export function fileSnapshot(path: string): SnapshotStore {
  return {
    load(): Record<string, StoredPrompt> | null {
      let text: string;
      try {
        text = readFileSync(path, "utf8");
      } catch {
        return null;
      }
      try {
        const data = JSON.parse(text) as { format?: unknown; prompts?: unknown };
        if (data.format === FORMAT && data.prompts && typeof data.prompts === "object") {
          return data.prompts as Record<string, StoredPrompt>;
        }
      } catch {
        // unreadable: start without it
      }
      process.emitWarning(`ignoring unreadable prompt snapshot ${path}`);
      return null;
    },
    save(prompts: Record<string, StoredPrompt>): void {
      const directory = dirname(path);
      mkdirSync(directory, { recursive: true });
      const temporary = join(directory, `.snapshot-${randomUUID()}`);
      const fd = openSync(temporary, "w", 0o600);
      try {
        writeSync(fd, JSON.stringify({ format: FORMAT, prompts }));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temporary, path);
    },
  };
}
