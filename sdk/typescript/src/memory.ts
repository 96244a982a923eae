import type { SnapshotStore } from "./client.js";
import type { StoredPrompt } from "./prompt.js";

/** A snapshot kept in memory (tests, or runtimes that persist it themselves via `load`/`save`). */
export function memorySnapshot(initial: Record<string, StoredPrompt> | null = null): SnapshotStore & {
  prompts: Record<string, StoredPrompt> | null;
} {
  const store = {
    prompts: initial,
    load: () => store.prompts,
    save: (prompts: Record<string, StoredPrompt>) => {
      store.prompts = prompts;
    },
  };
  return store;
}
