// TypeScript SDK cache hit: nanoseconds per `getCached()` (and `await get()`) once the prompt is cached,
// against Langfuse's JS client (`@langfuse/client` 5.11, the peer) with its prompt cache warm, pointed at
// the same PromptKeeper server's Langfuse-compatible API (/api/public), in the same run.
//
//     make bench-ts     (or: cd sdk/typescript && npx tsc && cd ../.. && PK_SERVER=.venv/bin/promptkeeper node bench/ts_cache_hit.mjs [calls])
//
// Every client is timed by the same code: batches of 1,000 calls timed with process.hrtime.bigint(),
// per-call time = batch time / 1,000, percentiles over the batches (the timer's own cost does not
// dominate). Async calls are awaited one after the other inside the batch.

import { LangfuseClient } from "../sdk/typescript/node_modules/@langfuse/client/dist/index.mjs";
import { PromptKeeper } from "../sdk/typescript/dist/index.js";
import { ADMIN_KEY, deploy, Lab } from "../sdk/typescript/test/harness.mjs";

const CALLS = Number(process.argv[2] ?? 1_000_000);
const BATCH = 1000;

function percentile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.round(q * (sorted.length - 1)))];
}

function report(label, perCall) {
  const sorted = [...perCall].sort((a, b) => a - b);
  return { label, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), batches: sorted.length };
}

function measureSync(label, call) {
  for (let i = 0; i < BATCH * 20; i++) call();
  const perCall = [];
  let sink = 0;
  for (let done = 0; done < CALLS; done += BATCH) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) if (call() !== undefined) sink++;
    perCall.push(Number(process.hrtime.bigint() - start) / BATCH);
  }
  if (sink === 0) throw new Error(`${label}: every call missed the cache`);
  return report(label, perCall);
}

async function measureAsync(label, call, calls = CALLS) {
  for (let i = 0; i < BATCH * 20; i++) await call();
  const perCall = [];
  for (let done = 0; done < calls; done += BATCH) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) await call();
    perCall.push(Number(process.hrtime.bigint() - start) / BATCH);
  }
  return report(label, perCall);
}

const lab = new Lab();
try {
  const server = await lab.sqliteServer();
  await server.ok("POST", "/v1/prompts", {
    name: "bench/p",
    content: { type: "chat", messages: [{ role: "system", content: "You help with {{ topic }}." }, { role: "user", content: "{{ q }}" }] },
  });
  await deploy(server, "bench/p", 1);

  const pk = new PromptKeeper({ url: server.url, apiKey: ADMIN_KEY, cacheTtl: 600 });
  await pk.get("bench/p");
  const langfuse = new LangfuseClient({ publicKey: ADMIN_KEY.split("_").slice(0, 2).join("_"), secretKey: ADMIN_KEY, baseUrl: server.url });
  const warm = await langfuse.prompt.get("bench/p", { label: "production", cacheTtlSeconds: 600 });
  if (warm.version !== 1) throw new Error(`Langfuse client got version ${warm.version}`);
  const fetchesBefore = pk.stats.fetches;

  const results = [
    measureSync("PromptKeeper getCached(name)", () => pk.getCached("bench/p")),
    await measureAsync("PromptKeeper await get(name)", () => pk.get("bench/p")),
    await measureAsync("@langfuse/client 5.11 await prompt.get (cache hit)", () =>
      langfuse.prompt.get("bench/p", { label: "production", cacheTtlSeconds: 600 }),
    ),
  ];
  if (pk.stats.fetches !== fetchesBefore) throw new Error("the PromptKeeper client fetched during the benchmark");
  const peer = results[2].p50;
  console.log(`node ${process.version}, ${CALLS.toLocaleString("en")} calls per client in batches of ${BATCH}`);
  console.log("| client | p50 ns | p99 ns | p50 vs Langfuse |");
  console.log("|---|---:|---:|---:|");
  for (const r of results) console.log(`| ${r.label} | ${r.p50.toFixed(0)} | ${r.p99.toFixed(0)} | ${r === results[2] ? "1" : `${(peer / r.p50).toFixed(1)}x faster`} |`);
  console.log(`goal getCached p50 <= 1000 ns: ${results[0].p50 <= 1000 ? "met" : "NOT met"}`);
  await pk.close();
} finally {
  await lab.cleanup();
}
