// Vectors shared with the Python side: assignment (tests/data/assignment_vectors.json, generated from
// promptkeeper/core/assignment.py) and rendering (tests/data/render_corpus.json, generated with the
// server's renderer). tests/core/test_shared_vectors.py holds both files to the Python code.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  assign,
  fnv1a32,
  gbHash,
  getBucketRanges,
  LocalRenderUnsupported,
  MissingVariables,
  PromptKeeper,
  RenderFailed,
  ValidationFailed,
} from "../dist/index.js";
import { ADMIN_KEY, data, deploy, Lab } from "./harness.mjs";

describe("assignment vectors from the Python implementation", () => {
  const vectors = data("assignment_vectors.json");

  test("FNV-1a over UTF-16 code units", () => {
    for (const { text, fnv1a32: expected } of vectors.fnv1a32) assert.equal(fnv1a32(text), expected, JSON.stringify(text));
  });

  test("buckets", () => {
    for (const { seed, unit, version, n } of vectors.buckets) assert.equal(gbHash(seed, unit, version), n, `${seed}/${unit}/v${version}`);
  });

  test("bucket ranges, to the last bit", () => {
    for (const { weights, coverage, ranges } of vectors.ranges) assert.deepEqual(getBucketRanges(weights.length, coverage, weights), ranges);
  });

  test(`every assignment (${vectors.assignments.length} of them)`, () => {
    const wrong = vectors.assignments.filter(
      (c) => assign({ seed: c.seed, unit: c.unit, weights: c.weights, coverage: c.coverage, hashVersion: c.hash_version }) !== c.index,
    );
    assert.deepEqual(wrong, []);
    assert.ok(new Set(vectors.assignments.map((c) => c.index)).size >= 5, "every variant and 'outside' occur");
  });
});

describe("the render corpus, against a real server", () => {
  const { cases } = data("render_corpus.json");
  const lab = new Lab();
  let server;
  let pk;
  const prompts = new Map();

  before(async () => {
    server = await lab.sqliteServer();
    pk = new PromptKeeper({ url: server.url, apiKey: ADMIN_KEY, stream: false });
    for (const [index, c] of cases.entries()) {
      const name = `corpus/case-${index}`;
      await server.ok("POST", "/v1/prompts", { name, content: c.content });
      await deploy(server, name, 1);
      prompts.set(c.id, await pk.get(name));
    }
  });
  after(async () => {
    await pk?.close();
    await lab.cleanup();
  });

  const check = async (attempt, c) => {
    if ("output" in c) {
      assert.deepEqual(await attempt(), c.output);
    } else if (c.error === "MissingVariables") {
      await assert.rejects(attempt, (error) => error instanceof MissingVariables && assert.deepEqual(error.names, c.missing) === undefined);
    } else {
      await assert.rejects(attempt, (error) => error instanceof RenderFailed && error.message.includes(c.message));
    }
  };

  test("a value the server refuses (a lone surrogate) is not rendered locally either", async () => {
    const prompt = prompts.get("one variable");
    assert.equal(prompt.renderedLocally({ name: "a\ud800b" }), false);
    await assert.rejects(prompt.render({ name: "a\ud800b" }), (error) => error instanceof ValidationFailed && /surrogate/.test(error.message));
  });

  for (const c of cases) {
    test(`${c.local ? "local" : "server"}: ${c.id}`, async () => {
      const prompt = prompts.get(c.id);
      // the server agrees with the corpus (so the corpus is the server's output)...
      await check(() => prompt.renderRemote(c.variables), c);
      // ...the local renderer gives exactly that, or declines and render() asks the server
      assert.equal(prompt.renderedLocally(c.variables), c.local);
      if (c.local) {
        await check(async () => prompt.renderLocal(c.variables), c);
      } else {
        assert.throws(() => prompt.renderLocal(c.variables), LocalRenderUnsupported);
      }
      await check(() => prompt.render(c.variables), c);
    });
  }
});
