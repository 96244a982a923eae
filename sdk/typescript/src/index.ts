/**
 * The PromptKeeper SDK for TypeScript and JavaScript (Node 20+, edge runtimes, browsers).
 *
 *     import { PromptKeeper } from "@promptkeeper/sdk";
 *     const pk = new PromptKeeper({ url: "http://127.0.0.1:8700", apiKey, fallbacks: { greeting: "Hello {{ name }}" } });
 *     const prompt = await pk.get("greeting");
 *     await prompt.render({ name: "Ada" });
 *
 * Uses only the platform (`fetch`, streams, `crypto.randomUUID`); nothing here touches a file system.
 * The snapshot file is in `@promptkeeper/sdk/node`.
 */

export { PromptKeeper, type ClientOptions, type GetOptions, type SnapshotStore, type Stats } from "./client.js";
export { Prompt, type Fallback, type OtelAttributes, type Source, type StoredPrompt } from "./prompt.js";
export * from "./errors.js";
export { assign, fnv1a32, gbHash, getBucketRanges, chooseVariation, getEqualWeights } from "./assignment.js";
export { localRender, MAX_LOCAL_CHARS, type ChatMessage, type Rendered, type Variables, type PromptContent } from "./template.js";
export type * from "./types.js";
export type { OutcomeFields } from "./events.js";
export { memorySnapshot } from "./memory.js";
