// The SDK against one real `promptkeeper serve` on SQLite: cache hits, typed errors, fallbacks, the
// snapshot file, idempotent writes.

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  Conflict,
  fileSnapshot,
  NotFound,
  PromptKeeper,
  PromptKeeperError,
  PromptUnavailable,
  Unauthorized,
  ValidationFailed,
} from "../dist/node.js";
import { ADMIN_KEY, freePort, Lab, prepare, textContent, waitUntil } from "./harness.mjs";

describe("one server on SQLite", () => {
  const lab = new Lab();
  let server;
  const clients = [];
  const client = (options = {}) => {
    const made = new PromptKeeper({ url: server.url, apiKey: ADMIN_KEY, ...options });
    clients.push(made);
    return made;
  };

  before(async () => {
    server = await lab.sqliteServer();
    await prepare(server, "p", 3);
    await prepare(server, "support/reply", 1);
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await lab.cleanup();
  });

  test("get fetches once; getCached then answers synchronously with the same object", async () => {
    const pk = client({ stream: false });
    assert.equal(pk.getCached("p"), undefined, "nothing cached before the first get");
    const prompt = await pk.get("p");
    assert.equal(prompt.version, 1);
    assert.equal(prompt.source, "server");
    assert.equal(prompt.environment, "production");
    assert.equal(typeof prompt.revision, "number");
    const fetches = pk.stats.fetches;
    const hit = pk.getCached("p");
    assert.ok(!(hit instanceof Promise));
    assert.equal(hit, prompt, "a hit returns the cached Prompt itself");
    assert.equal(await pk.get("p"), prompt);
    assert.equal(pk.getCached("p", { environment: "production" }), prompt);
    assert.equal(pk.getCached("p", { label: "production" }), prompt);
    assert.equal(pk.stats.fetches, fetches, "hits made no request");
    assert.equal(pk.getCached("p", { environment: "staging" }), undefined);
  });

  test("a name with a folder, a pinned version, and the label alias", async () => {
    const pk = client({ stream: false });
    assert.equal((await pk.get("support/reply")).name, "support/reply");
    const pinned = await pk.get("p", { version: 2 });
    assert.equal(pinned.version, 2);
    assert.equal(pinned.environment, null);
    assert.equal(pk.getCached("p", { version: 2 }), pinned);
    assert.equal((await pk.get("p", { label: "production" })).version, 1);
  });

  test("an unknown prompt is NotFound, a bad key Unauthorized: answers, not outages", async () => {
    const pk = client({ stream: false, fallbacks: { missing: "fallback {{ x }}" } });
    await assert.rejects(pk.get("missing"), (error) => {
      assert.ok(error instanceof NotFound);
      assert.ok(error instanceof PromptKeeperError);
      assert.equal(error.code, "not_found");
      assert.equal(error.status, 404);
      assert.match(error.message, /missing/);
      return true;
    });
    const stranger = client({ stream: false, apiKey: "pk_nobody12_0123456789abcdefghijklmnopqrstuvwxyzABCDEF" });
    await assert.rejects(stranger.get("p"), Unauthorized);
  });

  test("write errors are typed: ValidationFailed names the field, Conflict for a stale base version", async () => {
    const pk = client({ stream: false });
    await assert.rejects(pk.createVersion("p", { type: "text", template: "{% if %}" }), (error) => {
      assert.ok(error instanceof ValidationFailed);
      assert.equal(error.code, "validation_failed");
      assert.match(error.message, /template|line/);
      return true;
    });
    await assert.rejects(pk.createVersion("p", textContent("stale"), { baseVersion: 1 }), (error) => {
      assert.ok(error instanceof Conflict, `${error.name}: ${error.message}`);
      assert.equal(error.status, 409);
      return true;
    });
    await assert.rejects(pk.deploy("p", "nowhere", 1), (error) => error instanceof PromptKeeperError && error.status >= 400);
  });

  test("a retried write is applied once: the answer of the first attempt is lost after its commit", async () => {
    const before = (await server.ok("GET", "/v1/prompts/p/versions")).items.length;
    const keys = [];
    let calls = 0;
    const losing = async (url, init) => {
      if (init?.method === "POST" && url.includes("/versions")) {
        calls++;
        keys.push(new Headers(init.headers).get("Idempotency-Key"));
        const response = await fetch(url, init); // the server commits the version...
        if (calls === 1) {
          await response.text();
          throw new TypeError("fetch failed: connection reset"); // ...and the answer never arrives
        }
        return response;
      }
      return fetch(url, init);
    };
    const pk = client({ stream: false, fetch: losing });
    const version = await pk.createVersion("p", textContent("written once"), { message: "retry me" });
    assert.equal(calls, 2, "the SDK retried");
    assert.equal(keys[0], keys[1], "with the same Idempotency-Key");
    assert.ok(keys[0].length > 10);
    const items = (await server.ok("GET", "/v1/prompts/p/versions")).items;
    assert.equal(items.length, before + 1, "one version, not two");
    assert.equal(version.number, Math.max(...items.map((v) => v.number)));
    assert.equal(version.content.template, "written once");
  });

  test("deploy and createPrompt go through the same idempotent writer", async () => {
    const pk = client({ stream: false });
    const created = await pk.createPrompt("made/by-sdk", textContent("hello {{ name }}"), { description: "from TS" });
    assert.equal(created.name, "made/by-sdk");
    assert.equal(created.version.number, 1);
    const deployment = await pk.deploy("made/by-sdk", "production", 1, { reason: "first" });
    assert.equal(deployment.version, 1);
    assert.equal((await pk.get("made/by-sdk")).version, 1);
  });

  test("server unreachable: fallback, then PromptUnavailable naming the prompt", async () => {
    const port = await freePort(); // nothing listens there
    const pk = client({
      url: [`http://127.0.0.1:${port}`],
      stream: false,
      retries: 0,
      timeout: 1,
      fallbacks: { greeting: "Hello {{ name }}", chat: [{ role: "system", content: "Be brief, {{ name }}." }] },
    });
    const fallback = await pk.get("greeting");
    assert.equal(fallback.source, "fallback");
    assert.equal(fallback.version, 0);
    assert.deepEqual(fallback.variables, ["name"]);
    assert.equal(fallback.renderLocal({ name: "Ada" }), "Hello Ada");
    assert.equal(await fallback.render({ name: "Ada" }), "Hello Ada");
    assert.deepEqual(await (await pk.get("chat")).render({ name: "Bo" }), [{ role: "system", content: "Be brief, Bo." }]);
    await assert.rejects(pk.get("other"), (error) => {
      assert.ok(error instanceof PromptUnavailable);
      assert.equal(error.code, "prompt_unavailable");
      assert.match(error.message, /prompt 'other' is unavailable: the server could not be reached/);
      return true;
    });
    assert.throws(() => new PromptKeeper({ url: server.url, apiKey: ADMIN_KEY, fallbacks: { bad: 42 } }), TypeError);
    assert.throws(
      () => new PromptKeeper({ url: server.url, apiKey: ADMIN_KEY, fallbacks: { bad: "{% for x in y %}{% endfor %}" } }),
      /must render locally/,
    );
  });

  test("server killed: the last known value keeps being served, a new process starts from the snapshot file", async () => {
    // a server of its own, killed for good (restarting one costs a minute on a loaded machine)
    const doomed = await lab.sqliteServer({ PROMPTKEEPER_DATABASE_URL: `sqlite:///${join(lab.dir, "doomed.db")}` });
    await prepare(doomed, "p", 2);
    const path = join(lab.dir, "snap", "prompts.json");
    const running = client({ url: doomed.url, stream: false, cacheTtl: 0.05, retries: 0, timeout: 1 });
    const writer = client({ url: doomed.url, stream: false, snapshot: fileSnapshot(path) });
    assert.equal((await running.get("p")).version, 1);
    const live = await writer.get("p");
    await writer.get("p", { version: 2 });
    await writer.close();
    const { readdirSync, readFileSync } = await import("node:fs");
    const stored = JSON.parse(readFileSync(path, "utf8"));
    assert.equal(stored.format, 1);
    assert.deepEqual(Object.keys(stored.prompts).sort(), ["p@production", "p@v2"]);
    assert.deepEqual(readdirSync(join(lab.dir, "snap")), ["prompts.json"], "no temporary file left behind");

    await doomed.kill();
    for (let i = 0; i < 5; i++) {
      const prompt = await running.get("p"); // expired: a refresh is attempted and fails
      assert.equal(prompt.version, 1);
      assert.equal(prompt.source, "server");
      await new Promise((r) => setTimeout(r, 60));
    }
    await waitUntil(() => running.stats.refreshFailures >= 1, { message: "a failed refresh" });
    assert.equal(running.getCached("p").version, 1);

    const reader = client({ url: doomed.url, stream: false, snapshot: fileSnapshot(path), retries: 0, timeout: 1 });
    const served = await reader.get("p");
    assert.equal(served.source, "snapshot");
    assert.equal(served.version, live.version);
    assert.deepEqual(served.content, live.content);
    assert.equal((await reader.get("p", { version: 2 })).source, "snapshot");
    assert.equal(served.renderLocal({ who: "you" }), "v1 you");
    await assert.rejects(reader.get("never-fetched"), PromptUnavailable);

    // a server that answers replaces the snapshot's copy
    const back = client({ url: [doomed.url, server.url], stream: false, snapshot: fileSnapshot(path), retries: 0, timeout: 1 });
    assert.equal((await back.get("p")).source, "server");
  });

  test("where streaming is unavailable, cached prompts are revalidated with ETags every pollInterval", async () => {
    await prepare(server, "polled", 2);
    let streamAsks = 0;
    const noStream = async (url, init) => {
      if (url.includes("/v1/stream")) {
        streamAsks++;
        return new Response("streaming is not available here", { status: 503 });
      }
      return fetch(url, init);
    };
    const pk = client({ fetch: noStream, cacheTtl: 600, pollInterval: 0.3 });
    assert.equal((await pk.get("polled")).version, 1);
    await waitUntil(() => pk.stats.notModified >= 2, { message: "ETag revalidations answered 304" });
    assert.equal(pk.streamConnected, false);
    assert.ok(streamAsks >= 1, "the stream was tried");
    await server.ok("POST", "/v1/prompts/polled/deployments", { environment: "production", version: 2 });
    await waitUntil(() => pk.getCached("polled").version === 2, { message: "the poll picked up v2" });
  });

  test("an unreadable snapshot is ignored, not fatal", async () => {
    const { writeFileSync } = await import("node:fs");
    const path = join(lab.dir, "broken.json");
    writeFileSync(path, "{not json");
    const pk = client({ stream: false, snapshot: fileSnapshot(path) });
    assert.equal((await pk.get("p")).version, 1);
  });

  test("bad options are refused at once", () => {
    assert.throws(() => new PromptKeeper({ url: [], apiKey: ADMIN_KEY }), /at least one server URL/);
    assert.throws(() => new PromptKeeper({ url: server.url, apiKey: "" }), /API key/);
    assert.throws(() => new PromptKeeper({ url: server.url, apiKey: ADMIN_KEY, timeout: 0 }), /timeout must be > 0/);
  });

  test("a unit's variant is computed locally, identical to the server's, and its exposure is logged", async () => {
    await prepare(server, "exp", 2);
    const created = await server.ok("POST", "/v1/experiments", {
      prompt: "exp",
      environment: "production",
      name: "ts sdk",
      candidates: [{ version: 2, weight: 1, key: "treatment" }],
      primary_metric: "completion",
      baseline: 0.5,
      mde: 0.07,
    });
    await server.ok("POST", `/v1/experiments/${created.id}/start`, {});
    const pk = client({ stream: false });
    const plain = await pk.get("exp");
    assert.equal(plain.experiment?.id, created.id);
    assert.equal(plain.experiment.mode, "fixed");
    const fetches = pk.stats.fetches;
    const seen = new Set();
    for (let i = 0; i < 40; i++) {
      const unit = `u${i}`;
      const served = await pk.get("exp", { unit });
      const native = await server.ok("GET", `/v1/resolve/exp?environment=production&unit=${unit}`);
      assert.equal(served.version, native.version, `unit ${unit}`);
      assert.equal(served.variant, native.assignment?.variant ?? null, `unit ${unit}`);
      if (served.variant !== null) {
        assert.equal(served.unit, unit);
        assert.equal(typeof served.requestId, "string");
        assert.equal(served.experimentId, created.id);
      }
      assert.equal(pk.getCached("exp", { unit })?.variant ?? null, served.variant);
      seen.add(served.variant);
    }
    assert.equal(pk.stats.fetches, fetches, "assignment made no request");
    assert.ok(seen.size >= 2, "both variants served");
    pk.logOutcome((await pk.get("exp", { unit: "u1" })).requestId ?? "x", { completed: true });
    assert.equal(await pk.flush(), true);
    assert.ok(pk.events.sent >= 40, `exposures sent (${pk.events.sent})`);
  });

  test("outcomes and generations are posted to /v1/events", async () => {
    const pk = client({ stream: false });
    const prompt = await pk.get("p");
    const id = pk.logGeneration(prompt, "an answer", { latencyMs: 12 });
    assert.equal(typeof id, "string");
    pk.logOutcome(id, { thumbs: "up" });
    assert.throws(() => pk.logOutcome(id, { thumbs: "sideways" }), /thumbs must be/);
    assert.throws(() => pk.logOutcome(id, { colour: 1 }), /unknown outcome field/);
    assert.equal(await pk.flush(), true);
    assert.equal(pk.events.sent, 2);
    assert.equal(pk.events.dropped, 0);
  });
});
