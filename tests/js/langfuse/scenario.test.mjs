// The Langfuse compatibility scenario for the JS clients: `langfuse` 3.x (MATRIX_CLIENT=js-langfuse)
// and `@langfuse/client` 5.x (MATRIX_CLIENT=js-client). tests/test_langfuse_matrix.py starts the
// server and a counting proxy, then runs `node --test` here with MATRIX_* set; every row is written
// to MATRIX_REPORT as "pass", "skip: why" or "fail: what" (the same rows as tests/langfuse/scenario.py).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";

const env = process.env;
const CLIENT = env.MATRIX_CLIENT;
const P = env.MATRIX_PREFIX;
const SECRET = env.MATRIX_SECRET;
const PUBLIC = SECRET.split("_").slice(0, 2).join("_");
const rows = {};

// One face for both clients: what differs between 3.x and 5.x is only where each call lives.
async function makeClient() {
  if (CLIENT === "js-langfuse") {
    const { Langfuse } = await import("langfuse");
    const lf = new Langfuse({ publicKey: PUBLIC, secretKey: SECRET, baseUrl: env.MATRIX_URL });
    return {
      projects: () => lf.api.projectsGet(),
      create: (body) => lf.createPrompt(body),
      get: (name, options = {}) => {
        const { version, ...rest } = options;
        return lf.getPrompt(name, version, rest);
      },
      update: (body) => lf.updatePrompt(body),
      list: (query) => lf.api.promptsList(query),
      close: () => lf.shutdownAsync(),
    };
  }
  const { LangfuseClient } = await import("@langfuse/client");
  const lf = new LangfuseClient({ publicKey: PUBLIC, secretKey: SECRET, baseUrl: env.MATRIX_URL });
  return {
    projects: () => lf.api.projects.get(),
    create: (body) => lf.prompt.create(body),
    get: (name, options = {}) => lf.prompt.get(name, options),
    update: (body) => lf.prompt.update(body),
    list: (query) => lf.api.prompts.list(query),
    close: async () => {},
  };
}

const lf = await makeClient();

// A refused create: @langfuse/client 5.x rejects; langfuse 3.x logs the error and resolves with a
// prompt object built from the error body (no version), as it does against Langfuse itself.
async function refused(promise) {
  try {
    const result = await promise;
    assert.equal(CLIENT, "js-langfuse", "a refused create resolved");
    assert.equal(result.version, undefined, "a refused create made a version");
    return JSON.stringify(result.promptResponse ?? result);
  } catch (error) {
    return String(error && error.message ? error.message : error);
  }
}

async function v1(method, path, body) {
  const response = await fetch(env.MATRIX_API + path, {
    method,
    headers: { Authorization: `Bearer ${SECRET}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${await response.text()}`);
}

function row(name, body) {
  test(name, async (t) => {
    try {
      const skipped = await body();
      if (typeof skipped === "string") {
        rows[name] = `skip: ${skipped}`;
        t.skip(skipped);
        return;
      }
      rows[name] = "pass";
    } catch (error) {
      rows[name] = `fail: ${error && error.stack ? error.stack.slice(0, 1500) : error}`;
      throw error;
    }
  });
}

row("auth_check", async () => {
  // Neither JS client has auth_check(); the projects call is what it makes (Python's auth_check too).
  const projects = await lf.projects();
  assert.deepEqual(projects.data.map((p) => p.name), ["default"]);
});

row("create_and_get", async () => {
  const name = `${P}critic`;
  const first = await lf.create({
    name,
    prompt: "As a {{level}} critic, rate {{movie}}.",
    labels: ["staging"],
    tags: ["movies"],
    config: { model: "gpt-4o-mini", temperature: 0.3 },
    commitMessage: "first cut",
  });
  assert.equal(first.version, 1);
  assert.deepEqual([...first.labels].sort(), ["latest", "staging"]);
  const second = await lf.create({ name, prompt: "Rate {{movie}} like a {{level}}.", labels: ["production"] });
  assert.equal(second.version, 2);
  assert.equal((await lf.get(name, { cacheTtlSeconds: 0 })).version, 2);
  assert.equal((await lf.get(name, { label: "staging", cacheTtlSeconds: 0 })).version, 1);
  assert.equal((await lf.get(name, { label: "latest", cacheTtlSeconds: 0 })).version, 2);
  const pinned = await lf.get(name, { version: 1, cacheTtlSeconds: 0 });
  assert.deepEqual(pinned.config, { model: "gpt-4o-mini", temperature: 0.3 });
  assert.equal(pinned.commitMessage, "first cut");
});

row("compile_text", async () => {
  const prompt = await lf.get(`${P}critic`, { version: 1, cacheTtlSeconds: 0 });
  assert.equal(prompt.compile({ level: "expert", movie: "Dune" }), "As a expert critic, rate Dune.");
});

row("chat_placeholders", async () => {
  const name = `${P}support-chat`;
  await lf.create({
    name,
    type: "chat",
    prompt: [
      { role: "system", content: "You help with {{product}}." },
      { type: "placeholder", name: "history" },
      { role: "user", content: "{{question}}" },
    ],
    labels: ["production"],
  });
  const prompt = await lf.get(name, { type: "chat", cacheTtlSeconds: 0 });
  const messages = prompt.compile(
    { product: "Acme", question: "Where?" },
    { history: [{ role: "user", content: "hi" }] },
  );
  assert.deepEqual(messages, [
    { role: "system", content: "You help with Acme." },
    { role: "user", content: "hi" },
    { role: "user", content: "Where?" },
  ]);
});

row("any_chat_role", async () => {
  const name = `${P}team/judge`;
  await lf.create({
    name,
    type: "chat",
    prompt: [
      { role: "critic", content: "Judge {{x}}" },
      { role: "user", content: "go" },
    ],
    labels: ["production"],
  });
  const compiled = (await lf.get(name, { type: "chat", cacheTtlSeconds: 0 })).compile({ x: "it" });
  assert.deepEqual(compiled[0], { role: "critic", content: "Judge it" });
});

row("label_moves", async () => {
  const name = `${P}critic`;
  await lf.update({ name, version: 1, newLabels: ["production"] });
  assert.equal((await lf.get(name, { cacheTtlSeconds: 0 })).version, 1);
  assert.deepEqual((await lf.get(name, { version: 2, cacheTtlSeconds: 0 })).labels, ["latest"]);
});

row("caching_and_fallback", async () => {
  const name = `${P}cached`;
  await lf.create({ name, prompt: "one", labels: ["production"] });
  await lf.create({ name, prompt: "two" });
  assert.equal((await lf.get(name, { cacheTtlSeconds: 60 })).prompt, "one");
  await v1("POST", `/v1/prompts/${name}/deployments`, { environment: "production", version: 2 });
  assert.equal((await lf.get(name, { cacheTtlSeconds: 60 })).prompt, "one"); // from the SDK's cache
  assert.equal((await lf.get(name, { cacheTtlSeconds: 0 })).prompt, "two");
  const fallback = await lf.get(`${P}missing`, { fallback: "Hello {{name}}", maxRetries: 0, fetchTimeoutMs: 5000 });
  assert.equal(fallback.isFallback, true);
  assert.equal(fallback.compile({ name: "Ada" }), "Hello Ada");
});

row("list_from_updated_at", async () => {
  const tag = `${P}listed`;
  await lf.create({ name: `${P}list-old`, prompt: "1", tags: [tag] });
  await lf.create({ name: `${P}list-both`, prompt: "1", tags: [tag] });
  const middle = new Date();
  await new Promise((resolve) => setTimeout(resolve, 50));
  await lf.create({ name: `${P}list-both`, prompt: "2", tags: [tag] });
  const later = await lf.list({ tag, fromUpdatedAt: middle.toISOString() });
  assert.deepEqual(later.data.map((p) => [p.name, p.versions]), [[`${P}list-both`, [2]]]);
  const earlier = await lf.list({ tag, toUpdatedAt: middle.toISOString() });
  assert.deepEqual(
    earlier.data.map((p) => [p.name, p.versions]).sort(),
    [[`${P}list-both`, [1]], [`${P}list-old`, [1]]],
  );
});

row("refused_change_sent_once", async () => {
  // the proxy counts: tests/test_langfuse_matrix.py checks this POST went out once
  const name = `${P}typed`;
  await lf.create({ name, prompt: "text" });
  const message = await refused(lf.create({ name, type: "chat", prompt: [{ role: "user", content: "x" }] }));
  assert.match(message, /text prompt|400/);
});

row("upper_case_and_folders", async () => {
  for (const name of [`${P}movieCritic`, `${P}Support/ReplyDraft`]) {
    const made = await lf.create({ name, prompt: "Rate {{movie}}", labels: ["production"] });
    assert.equal(made.name, name);
    const fetched = await lf.get(name, { cacheTtlSeconds: 0 });
    assert.equal(fetched.name, name);
    assert.equal(fetched.compile({ movie: "Up" }), "Rate Up");
  }
  const message = await refused(lf.create({ name: `${P}MovieCritic`, prompt: "x" }));
  assert.match(message, /unique regardless of case|400/);
});

after(async () => {
  await lf.close();
  writeFileSync(env.MATRIX_REPORT, JSON.stringify({ client: CLIENT, rows }));
});
