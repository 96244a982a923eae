// Two `promptkeeper serve` instances on PostgreSQL + Redis: a change made through one instance is
// pushed to a Node client subscribed to the other; the client fails over when its server is killed,
// resyncs after reconnecting, and serves its snapshot when every server is gone.
// Cache TTLs of 10 minutes and a 30 s periodic check everywhere: only the push path explains a change
// seen within seconds.

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileSnapshot, PromptKeeper } from "../dist/node.js";
import { ADMIN_KEY, deploy, Lab, prepare, sleep, textContent, waitUntil } from "./harness.mjs";

const SLOW = { PROMPTKEEPER_CACHE_L1_TTL: "600", PROMPTKEEPER_CACHE_EPOCH_INTERVAL: "30" };
const patient = { timeout: 20_000 };

describe("two servers on PostgreSQL and Redis", () => {
  const lab = new Lab();
  let a;
  let b;
  let skip = false;
  const clients = [];
  const client = (urls, options = {}) => {
    const made = new PromptKeeper({ url: urls, apiKey: ADMIN_KEY, cacheTtl: 600, pollInterval: 600, ...options });
    clients.push(made);
    return made;
  };

  before(async () => {
    const servers = await lab.cluster(2, SLOW);
    if (servers === null) {
      skip = true;
      return;
    }
    [a, b] = servers;
    await prepare(a, "p", 6);
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await lab.cleanup();
  });

  test("a deploy and a rollback through B reach a client following A's stream", async (t) => {
    if (skip) return t.skip("PostgreSQL is not reachable (make services)");
    const pk = client([a.url]);
    assert.equal((await pk.get("p")).version, 1);
    await waitUntil(() => pk.streamUrl === a.url, { ...patient, message: "the client follows A's stream" });
    await deploy(b, "p", 2);
    await waitUntil(() => pk.getCached("p").version === 2, { ...patient, message: "the client serves v2" });
    const rolled = await b.ok("POST", "/v1/prompts/p/rollback", { environment: "production", reason: "bad" });
    assert.equal(rolled.version, 1);
    await waitUntil(() => pk.getCached("p").version === 1, { ...patient, message: "the client serves v1 again" });
    // v1 was seen before: served from the announcement, then replaced by the server's answer
    assert.ok(pk.stats.servedOnAnnouncement >= 1, JSON.stringify(pk.stats));
    await waitUntil(() => pk.getCached("p").etag !== null, { ...patient, message: "the server's answer replaced it" });
    assert.equal(pk.getCached("p").version, 1);
    assert.ok(pk.stats.streamEvents >= 2, `changes came over the stream (${pk.stats.streamEvents} events)`);
    assert.equal(pk.getCached("p").source, "server");
  });

  test("an announced change is never settled with an older answer from an instance that has not heard of it", async (t) => {
    if (skip) return t.skip("PostgreSQL is not reachable (make services)");
    await prepare(a, "f", 2);
    // X: same database, no Redis, a 30 s periodic check: it serves its cached v1 for a while after a deploy
    const x = await lab.serverLike(a, { PROMPTKEEPER_REDIS_URL: undefined });
    const resolvesOnA = { failing: 0 };
    const routed = async (url, init) => {
      if (url.startsWith(x.url) && url.includes("/v1/stream")) return new Response("no stream here", { status: 503 });
      if (url.startsWith(a.url) && url.includes("/v1/resolve/f") && resolvesOnA.failing > 0) {
        resolvesOnA.failing--;
        throw new TypeError("fetch failed: connection refused");
      }
      return fetch(url, init);
    };
    const pk = client([x.url, a.url], { fetch: routed, timeout: 2, retries: 0, cacheTtl: 0.2 });
    assert.equal((await pk.get("f")).version, 1);
    await waitUntil(() => pk.streamUrl === a.url, { ...patient, message: "the client follows A's stream" });
    resolvesOnA.failing = 2; // the announcer cannot be asked at first: X's older answer comes back
    await deploy(a, "f", 2);
    await waitUntil(() => pk.stats.olderThanAnnounced >= 1, { ...patient, message: "an older answer was had" });
    await waitUntil(() => pk.getCached("f").version === 2, { timeout: 10_000, message: "the client serves v2" });
    // and keeps serving it: later refreshes (X first) do not go back to X's older answer
    for (let i = 0; i < 20; i++) {
      assert.equal(pk.getCached("f").version, 2);
      await sleep(100);
    }
    const onX = await x.ok("GET", "/v1/resolve/f");
    assert.equal(onX.version, 1, "X still serves v1: the client did not settle for it");
    await x.stop();
  });

  test("A killed: reads, the stream and writes fail over to B; a change made meanwhile is resynced", async (t) => {
    if (skip) return t.skip("PostgreSQL is not reachable (make services)");
    const path = join(lab.dir, "cluster-snapshot.json");
    const pk = client([a.url, b.url], { timeout: 1, snapshot: fileSnapshot(path) });
    const start = (await pk.get("p")).version;
    await waitUntil(() => pk.streamUrl === a.url, { ...patient, message: "the client follows A's stream" });
    await a.kill();
    await deploy(b, "p", 3); // while the client's stream is down or moving: no event will carry it
    assert.notEqual(start, 3);
    await waitUntil(() => pk.streamUrl === b.url, { ...patient, message: "the stream moved to B" });
    await waitUntil(() => pk.getCached("p").version === 3, { ...patient, message: "the client resynced to v3" });
    await deploy(b, "p", 4);
    await waitUntil(() => pk.getCached("p").version === 4, { ...patient, message: "B's stream pushes v4" });

    await b.ok("POST", "/v1/prompts", { name: "q", content: textContent("q {{ x }}") });
    await deploy(b, "q", 1);
    assert.equal((await pk.get("q")).version, 1, "a first read fails over to B");
    const written = await pk.createVersion("q", textContent("q2 {{ x }}"), { message: "via failover" });
    assert.equal(written.number, 2, "a write fails over to B");
    assert.equal((await b.ok("GET", "/v1/prompts/q/versions")).items.length, 2);

    // every server gone: a new process starts from the snapshot
    await b.kill();
    const offline = client([a.url, b.url], { timeout: 1, retries: 0, snapshot: fileSnapshot(path), stream: false });
    const served = await offline.get("p");
    assert.equal(served.source, "snapshot");
    assert.equal(served.version, 4);
    assert.equal((await offline.get("q")).source, "snapshot");
    assert.equal(pk.getCached("p").version, 4, "the running client keeps its last known value");
  });
});
