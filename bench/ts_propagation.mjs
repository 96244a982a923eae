// Propagation of a rollback to a Node client: from the rollback's HTTP response (made through instance A)
// to a TypeScript SDK client subscribed to instance B serving the new version from its cache.
//
//     make bench-ts     (or: PK_SERVER=.venv/bin/promptkeeper node bench/ts_propagation.mjs [rounds])
//
// PostgreSQL (a schema of its own) + Redis (a key prefix of its own), two `promptkeeper serve` processes
// with a 10-minute cache TTL and a 30 s periodic check, so only the push path (Redis pub/sub -> B's
// /v1/stream -> the SDK's refresh) explains a change seen within milliseconds. Rounds alternate a deploy
// of v2 and a rollback to v1; the client is watched on every turn of the event loop.

import { PromptKeeper } from "../sdk/typescript/dist/index.js";
import { ADMIN_KEY, deploy, Lab, prepare, waitUntil } from "../sdk/typescript/test/harness.mjs";

const ROUNDS = Number(process.argv[2] ?? 100);
const TIMEOUT_MS = 5000;
const tick = () => new Promise((resolve) => setImmediate(resolve));

function percentile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.round(q * (sorted.length - 1)))];
}

const lab = new Lab();
try {
  const servers = await lab.cluster(2, { PROMPTKEEPER_CACHE_L1_TTL: "600", PROMPTKEEPER_CACHE_EPOCH_INTERVAL: "30" });
  if (servers === null) throw new Error("PostgreSQL is not reachable (make services)");
  const [a, b] = servers;
  await prepare(a, "p", 2);
  const pk = new PromptKeeper({ url: b.url, apiKey: ADMIN_KEY, cacheTtl: 600, pollInterval: 600 });
  await pk.get("p");
  await waitUntil(() => pk.streamConnected, { timeout: 20_000, message: "the client's stream" });
  const times = [];
  const fromRequest = [];
  const requestTimes = [];
  let lost = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const target = round % 2 === 0 ? 2 : 1;
    const sent = performance.now();
    if (target === 2) await deploy(a, "p", 2);
    else await a.ok("POST", "/v1/prompts/p/rollback", { environment: "production", reason: "bench" });
    const start = performance.now();
    while (pk.getCached("p").version !== target) {
      if (performance.now() - start > TIMEOUT_MS) break;
      await tick();
    }
    const elapsed = performance.now() - start;
    if (pk.getCached("p").version !== target) lost++;
    else {
      times.push(elapsed);
      fromRequest.push(performance.now() - sent);
      requestTimes.push(start - sent);
    }
  }
  // deploys of new versions, never seen by the client: the refresh's round trip to B is on the path
  const fresh = [];
  for (let round = 0; round < Math.ceil(ROUNDS / 2); round++) {
    const created = await a.ok("POST", "/v1/prompts/p/versions", { content: { type: "text", template: `new ${round}` } });
    await deploy(a, "p", created.number);
    const start = performance.now();
    while (pk.getCached("p").version !== created.number) {
      if (performance.now() - start > TIMEOUT_MS) break;
      await tick();
    }
    if (pk.getCached("p").version === created.number) fresh.push(performance.now() - start);
    else lost++;
  }
  fresh.sort((x, y) => x - y);
  times.sort((x, y) => x - y);
  fromRequest.sort((x, y) => x - y);
  requestTimes.sort((x, y) => x - y);
  console.log(`node ${process.version}, ${ROUNDS} rounds (deploy / rollback alternating), ${lost} not seen within ${TIMEOUT_MS} ms`);
  console.log("| time from the HTTP response until the Node client serves the new version | p50 ms | p99 ms | max ms |");
  console.log("|---|---:|---:|---:|");
  console.log(`| rollback / deploy between seen versions through A, client on B's stream (${times.length} rounds) | ${percentile(times, 0.5).toFixed(1)} | ${percentile(times, 0.99).toFixed(1)} | ${times.at(-1).toFixed(1)} |`);
  console.log(`| ... the same, from sending the request (the write itself included) | ${percentile(fromRequest, 0.5).toFixed(1)} | ${percentile(fromRequest, 0.99).toFixed(1)} | ${fromRequest.at(-1).toFixed(1)} |`);
  console.log(`| ... the write's own HTTP round trip, for comparison | ${percentile(requestTimes, 0.5).toFixed(1)} | ${percentile(requestTimes, 0.99).toFixed(1)} | ${requestTimes.at(-1).toFixed(1)} |`);
  console.log(`| deploy of a version new to the client (${fresh.length} rounds; the refresh fetches it) | ${percentile(fresh, 0.5).toFixed(1)} | ${percentile(fresh, 0.99).toFixed(1)} | ${fresh.at(-1).toFixed(1)} |`);
  console.log(`goal p99 <= 100 ms: ${lost === 0 && percentile(times, 0.99) <= 100 ? "met" : "NOT met"}; stream events ${pk.stats.streamEvents}, fetches ${pk.stats.fetches}, served on announcement ${pk.stats.servedOnAnnouncement}`);
  await pk.close();
} finally {
  await lab.cleanup();
}
