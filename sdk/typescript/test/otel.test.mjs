// OpenTelemetry spans linked by `prompt.otelAttributes()`, sent by the OpenTelemetry JS SDK's own OTLP/HTTP
// exporters (protobuf and JSON) to a real `promptkeeper serve`: the experiment's results and the monitor
// see them, as tests/test_otlp.py checks for the Python SDK. One server for the file.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { diag, DiagLogLevel, SpanStatusCode } from "@opentelemetry/api";
import { OTLPTraceExporter as JsonExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as ProtobufExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { BasicTracerProvider, BatchSpanProcessor, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { PromptKeeper } from "../dist/index.js";
import { ADMIN_KEY, freePort, Lab, PYTHON, REPO, textContent, waitUntil } from "./harness.mjs";

const NAME = "otel/chat";
const COMPARED = "otel/compared";

/** What the exporters and span processors report through OpenTelemetry's diagnostics: a failed export
 * (the span processors hand it to the global error handler, which logs it here) or a partial success
 * (the exporter calls the export a success and only logs the server's `partial_success`). */
const diagnostics = [];
diag.setLogger(
  {
    error: (...args) => diagnostics.push(`error: ${args.map(String).join(" ")}`),
    warn: (...args) => diagnostics.push(`warn: ${args.map(String).join(" ")}`),
    info: () => {},
    debug: () => {},
    verbose: () => {},
  },
  DiagLogLevel.WARN,
);

/** OTel GenAI `gen_ai.output.messages`: one assistant message with one text part. */
const output = (text) => JSON.stringify([{ role: "assistant", parts: [{ type: "text", content: text }], finish_reason: "stop" }]);

async function experiment(server, name) {
  await server.ok("POST", "/v1/prompts", { name, content: textContent("A: {{ q }}") });
  await server.ok("POST", `/v1/prompts/${encodeURIComponent(name)}/versions`, { content: textContent("B: {{ q }}") });
  await server.ok("POST", `/v1/prompts/${encodeURIComponent(name)}/deployments`, { environment: "production", version: 1 });
  const created = await server.ok("POST", "/v1/experiments", {
    prompt: name,
    name: `otel ${name}`,
    candidates: [{ version: 2, weight: 1, key: "treatment" }],
    primary_metric: "latency_ms",
    std_dev: 100,
    mde: 50,
  });
  await server.ok("POST", `/v1/experiments/${created.id}/start`, {});
  return created.id;
}

describe("OpenTelemetry JS spans linked by prompt.otelAttributes()", () => {
  const lab = new Lab();
  let server;
  let key; // a runtime key: what an application holds, for the SDK and the exporters alike
  const clients = [];
  const client = (options = {}) => {
    const made = new PromptKeeper({ url: server.url, apiKey: key, stream: false, ...options });
    clients.push(made);
    return made;
  };

  before(async () => {
    server = await lab.sqliteServer();
    key = (await server.ok("POST", "/v1/keys", { name: "app", role: "runtime" })).secret;
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await lab.cleanup();
  });

  test("the same keys and values as the Python SDK's otel_attributes() for the same prompts", async () => {
    const experimentId = await experiment(server, COMPARED);
    const units = [0, 1, 2, 3, 4, 5].map((i) => [`compared-${i}`, `request-${i}`]);
    const dead = `http://127.0.0.1:${await freePort()}`;
    const pk = client();
    const unitless = await pk.get(COMPARED);
    const served = [];
    for (const [unit, requestId] of units) served.push(await pk.get(COMPARED, { unit, requestId }));
    const down = client({ url: dead, retries: 0, timeout: 0.5, fallbacks: { [COMPARED]: "Hello {{ q }}" } });
    const fallback = await down.get(COMPARED);
    assert.equal(fallback.source, "fallback");
    const ours = [
      unitless.otelAttributes(),
      unitless.variants[1].otelAttributes(),
      (await pk.get(COMPARED, { version: 2 })).otelAttributes(),
      ...served.map((p) => p.otelAttributes()),
      fallback.otelAttributes(),
    ];

    // the contract, spelled out (docs/opentelemetry.md): numbers stay numbers
    assert.deepEqual(ours[0], { "promptkeeper.prompt.name": COMPARED, "promptkeeper.prompt.version": 1, "promptkeeper.prompt.environment": "production" });
    assert.deepEqual(ours[1], { "promptkeeper.prompt.name": COMPARED, "promptkeeper.prompt.version": 2, "promptkeeper.prompt.environment": "production" });
    assert.deepEqual(ours[2], { "promptkeeper.prompt.name": COMPARED, "promptkeeper.prompt.version": 2 });
    for (const [index, prompt] of served.entries()) {
      assert.deepEqual(ours[3 + index], {
        "promptkeeper.prompt.name": COMPARED,
        "promptkeeper.prompt.version": prompt.variant === "control" ? 1 : 2,
        "promptkeeper.prompt.environment": "production",
        "promptkeeper.prompt.request_id": units[index][1],
        "promptkeeper.prompt.unit": units[index][0],
        "promptkeeper.prompt.experiment": experimentId,
        "promptkeeper.prompt.variant": prompt.variant,
      });
    }
    assert.deepEqual(ours.at(-1), {}, "a fallback credits no version");

    // ...and what the Python SDK gives for the same prompts, asked of the same server
    const python = [
      "import json, sys",
      "from promptkeeper.client import Client",
      "url, key, name, dead, units = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])",
      "with Client(url, key, stream=False) as sdk:",
      "    unitless = sdk.get(name)",
      "    out = [unitless.otel_attributes(), unitless.variants[1].otel_attributes(), sdk.get(name, version=2).otel_attributes()]",
      "    out += [sdk.get(name, unit=u, request_id=r).otel_attributes() for u, r in units]",
      "with Client(dead, key, fallbacks={name: 'Hello {{ q }}'}, retries=0, timeout=0.5, stream=False) as down:",
      "    out.append(down.get(name).otel_attributes())",
      "print(json.dumps(out))",
    ].join("\n");
    const env = { ...process.env, PYTHONPATH: [REPO, process.env.PYTHONPATH].filter(Boolean).join(":") };
    const run = spawnSync(PYTHON, ["-c", python, server.url, key, COMPARED, dead, JSON.stringify(units)], { env, encoding: "utf8", timeout: 60_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(ours, JSON.parse(run.stdout));
  });

  test("protobuf and JSON exporters: the experiment's numbers per variant and the monitor's records", async () => {
    const experimentId = await experiment(server, NAME);
    const monitor = await server.ok("POST", "/v1/monitors", {
      prompt: NAME,
      sample_rate: 1.0,
      scorers: [{ scorer: "not_contains", name: "safety", params: { values: ["UNSAFE"] } }],
    });
    await server.ok("POST", "/v1/metrics", { name: "llm_error", kind: "binary", higher_is_better: false });

    // protobuf, configured in code: `url` is the full endpoint, taken as given
    const protobuf = new BasicTracerProvider({
      spanProcessors: [
        new BatchSpanProcessor(new ProtobufExporter({ url: `${server.url}/otlp/v1/traces`, headers: { Authorization: `Bearer ${key}` } })),
      ],
    });
    // JSON, configured as docs/opentelemetry.md says for any exporter: the exporter reads the variables
    // when it is made and appends `v1/traces` to OTEL_EXPORTER_OTLP_ENDPOINT
    const saved = { endpoint: process.env.OTEL_EXPORTER_OTLP_ENDPOINT, headers: process.env.OTEL_EXPORTER_OTLP_HEADERS };
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `${server.url}/otlp`;
    process.env.OTEL_EXPORTER_OTLP_HEADERS = `Authorization=Bearer%20${key}`;
    const json = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new JsonExporter())] });
    for (const [name, value] of [["OTEL_EXPORTER_OTLP_ENDPOINT", saved.endpoint], ["OTEL_EXPORTER_OTLP_HEADERS", saved.headers]]) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    const tracers = [protobuf.getTracer("app"), json.getTracer("app")];

    const pk = client();
    const served = { control: 0, treatment: 0 };
    const outputs = []; // every span's output, but for the error's
    const controlOutputs = []; // the live version's generation records: what the monitor's window scores
    let spans = 0;
    let errors = 0;
    // ~10 units: until each variant has been served 5 times (assignment is by the experiment's random salt)
    while ((served.control < 5 || served.treatment < 5) && spans < 60) {
      const prompt = await pk.get(NAME, { unit: `user-${spans}` });
      assert.ok(prompt.variant in served && prompt.requestId, `a variant served: ${prompt.variant}`);
      served[prompt.variant]++;
      const slow = prompt.variant === "treatment";
      const text = spans % 4 === 0 ? "UNSAFE tip" : `answer ${spans}`;
      const start = Date.now();
      const span = tracers[spans % 2].startSpan("chat gpt-4o-mini", {
        startTime: new Date(start),
        attributes: {
          ...prompt.otelAttributes(),
          "gen_ai.operation.name": "chat",
          "gen_ai.request.model": "gpt-4o-mini",
          "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
          "gen_ai.usage.input_tokens": 100,
          "gen_ai.usage.output_tokens": slow ? 40 : 20,
          "gen_ai.output.messages": output(text),
        },
      });
      span.addEvent("gen_ai.content.completion.chunk", new Date(start + 50));
      if (spans === 3) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: "provider timeout" });
        errors++;
      } else {
        outputs.push(text);
        if (!slow) controlOutputs.push(text);
      }
      span.end(new Date(start + (slow ? 400 : 200)));
      spans++;
    }
    assert.ok(served.control >= 5 && served.treatment >= 5, JSON.stringify(served));
    assert.ok(await pk.flush(60), "the exposures get queued were sent");
    assert.equal(pk.events.dropped, 0);
    await Promise.all([protobuf.forceFlush(), json.forceFlush()]);
    await Promise.all([protobuf.shutdown(), json.shutdown()]);
    assert.deepEqual(diagnostics, [], "every export succeeded, with no partial success");

    const status = await waitUntil(
      async () => {
        const s = await server.ok("GET", `/v1/monitors/${monitor.id}/status`);
        return s.pending === 0 && s.scorers[0].current?.n === controlOutputs.length && s;
      },
      { timeout: 60_000, interval: 50, message: "the monitor to score the spans' generation records" },
    );
    const unsafe = controlOutputs.filter((o) => o === "UNSAFE tip").length;
    assert.equal(status.live_version, 1);
    assert.equal(status.scored, controlOutputs.length);
    assert.ok(Math.abs(status.scorers[0].current.level - (1 - unsafe / controlOutputs.length)) < 1e-9, JSON.stringify(status.scorers[0]));
    const scored = await server.ok("GET", `/v1/monitors/${monitor.id}/examples?limit=100`);
    assert.equal(scored.length, spans - errors, "both variants' records are scored, each once");
    assert.deepEqual(
      scored.filter((f) => !f.passed).map((f) => f.output).sort(),
      outputs.filter((o) => o === "UNSAFE tip"),
    );

    const results = await server.ok("GET", `/v1/experiments/${experimentId}/results`);
    const byKey = Object.fromEntries(results.variants.map((v) => [v.key, v]));
    const near = (actual, expected, what, tolerance = 1) =>
      assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual}, expected ${expected}`);
    for (const [variant, latency, outputTokens] of [["control", 200, 20], ["treatment", 400, 40]]) {
      const { exposures, metrics } = byKey[variant];
      assert.equal(exposures, served[variant], `${variant} exposures`);
      assert.equal(metrics.latency_ms.n, served[variant], `${variant} outcomes`);
      near(metrics.latency_ms.mean, latency, `${variant} latency_ms`);
      near(metrics.ttft_ms.mean, 50, `${variant} ttft_ms`);
      assert.equal(metrics.input_tokens.mean, 100);
      assert.equal(metrics.output_tokens.mean, outputTokens);
      near(metrics.cost_usd.mean, (100 * 0.15 + outputTokens * 0.6) / 1_000_000, `${variant} cost_usd`, 1e-12); // gpt-4o-mini's list price
    }
    const errorCount = Object.values(byKey).reduce((sum, v) => sum + v.metrics.llm_error.mean * v.metrics.llm_error.n, 0);
    near(errorCount, errors, "llm_error outcomes", 1e-9);

    const exposition = await (await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${ADMIN_KEY}` } })).text();
    assert.match(exposition, new RegExp(`^promptkeeper_otlp_spans_stored_total ${spans}(\\.0)?$`, "m"));
    assert.match(exposition, new RegExp(`^promptkeeper_otlp_generations_total ${spans - errors}(\\.0)?$`, "m"));
    assert.match(exposition, new RegExp(`^promptkeeper_otlp_outcomes_total ${spans}(\\.0)?$`, "m"));
  });
});
