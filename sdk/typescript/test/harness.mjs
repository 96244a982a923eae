// Real `promptkeeper serve` processes for the SDK's tests, started as tests/processes.py starts them.
// PK_SERVER: the promptkeeper executable (the Makefile passes $(BIN)/promptkeeper); its directory's
// `python` creates and drops the PostgreSQL schema of a test. Nothing shared is flushed or dropped: each
// test gets its own schema and a random Redis key prefix.

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, "../../..");
export const ADMIN_KEY = "pk_testadm1_0123456789abcdefghijklmnopqrstuvwxyzABCDEF";
export const SERVER = process.env.PK_SERVER ?? join(REPO, ".venv/bin/promptkeeper");
export const PYTHON = process.env.PK_PYTHON ?? join(dirname(SERVER), "python");
const POSTGRES = process.env.PROMPTKEEPER_TEST_POSTGRES_URL ?? "postgresql+psycopg://postgres@127.0.0.1:5432/test";
const REDIS = process.env.PROMPTKEEPER_TEST_REDIS_URL ?? "redis://127.0.0.1:6379/15";
export const IN_CI = ["1", "true", "yes"].includes((process.env.CI ?? "").toLowerCase());
const START_TIMEOUT = 120_000;

export function data(name) {
  return JSON.parse(readFileSync(join(REPO, "tests/data", name), "utf8"));
}

export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll `check` until it returns something truthy; fails with `message` after `timeout` ms. */
export async function waitUntil(check, { timeout = 15_000, interval = 20, message = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await check();
    } catch (error) {
      last = error;
    }
    if (last && !(last instanceof Error)) return last;
    await sleep(interval);
  }
  throw new Error(`timed out after ${timeout} ms waiting for ${message} (last: ${last})`);
}

export class Server {
  constructor(env, dir) {
    this.env = env;
    this.dir = dir;
    this.process = null;
    this.url = null;
  }

  async start() {
    this.port ??= await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PROMPTKEEPER_")));
    Object.assign(env, {
      PYTHONPATH: [REPO, process.env.PYTHONPATH].filter(Boolean).join(":"),
      PROMPTKEEPER_ADMIN_KEY: ADMIN_KEY,
      PROMPTKEEPER_ADMIN_KEY_FILE: join(this.dir, "admin-key"),
      PROMPTKEEPER_SECRET_KEY: "ts-sdk-tests-secret-key-0123456789abcdef",
      PROMPTKEEPER_LOG_LEVEL: "warning",
      PROMPTKEEPER_PORT: String(this.port),
      ...this.env,
    });
    this.log = [];
    this.process = spawn(SERVER, ["serve"], { env, cwd: this.dir, stdio: ["ignore", "pipe", "pipe"] });
    for (const stream of [this.process.stdout, this.process.stderr]) stream.on("data", (chunk) => this.log.push(String(chunk)));
    const exited = new Promise((r) => this.process.once("exit", r));
    this.exited = exited;
    const deadline = Date.now() + START_TIMEOUT;
    for (;;) {
      if (this.process.exitCode !== null) throw new Error(`server exited: ${this.log.join("").slice(-3000)}`);
      try {
        const response = await fetch(`${this.url}/healthz`, { signal: AbortSignal.timeout(1000) });
        if (response.status === 200) return this;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`server did not start: ${this.log.join("").slice(-3000)}`);
      await sleep(50);
    }
  }

  /** SIGKILL: the server disappears mid-whatever, as in a crash. */
  async kill() {
    if (this.process && this.process.exitCode === null && this.process.signalCode === null) {
      this.process.kill("SIGKILL");
      await this.exited;
    }
  }

  async stop() {
    if (this.process && this.process.exitCode === null && this.process.signalCode === null) {
      this.process.kill("SIGTERM");
      const timer = setTimeout(() => this.process.kill("SIGKILL"), 15_000);
      await this.exited;
      clearTimeout(timer);
    }
  }

  async api(method, path, body, key = ADMIN_KEY) {
    const response = await fetch(this.url + path, {
      method,
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  }

  async ok(method, path, body) {
    const answer = await this.api(method, path, body);
    if (answer.status >= 300) throw new Error(`${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
    return answer.body;
  }
}

/** A place for servers, their databases and files; `cleanup()` stops and removes all of it. */
export class Lab {
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "pk-ts-"));
    this.servers = [];
    this.schemas = [];
  }

  async sqliteServer(env = {}) {
    const server = new Server({ PROMPTKEEPER_DATABASE_URL: `sqlite:///${join(this.dir, "pk.db")}`, ...env }, this.dir);
    this.servers.push(server);
    return server.start();
  }

  /** A fresh schema in the shared test database, or null (skip) when PostgreSQL is unreachable outside CI. */
  postgresUrl() {
    const schema = `pk_ts_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
    const result = pythonSql(`CREATE SCHEMA "${schema}"`);
    if (result.status !== 0) {
      if (IN_CI) throw new Error(`PostgreSQL unavailable: ${result.stderr}`);
      return null;
    }
    this.schemas.push(schema);
    const sep = POSTGRES.includes("?") ? "&" : "?";
    return `${POSTGRES}${sep}options=${encodeURIComponent(`-csearch_path=${schema}`)}`;
  }

  /** Servers sharing one PostgreSQL schema and a Redis key prefix of their own. */
  async cluster(count, env = {}) {
    const database = this.postgresUrl();
    if (database === null) return null;
    const shared = {
      PROMPTKEEPER_DATABASE_URL: database,
      PROMPTKEEPER_REDIS_URL: REDIS,
      PROMPTKEEPER_REDIS_PREFIX: `pkts-${Math.random().toString(36).slice(2, 10)}`,
      ...env,
    };
    const servers = [];
    for (let i = 0; i < count; i++) {
      const server = new Server(shared, this.dir);
      this.servers.push(server);
      servers.push(await server.start()); // one at a time: the first migrates the schema
    }
    return servers;
  }

  /** Another server on `like`'s database with some settings changed (`undefined` removes one). */
  async serverLike(like, overrides) {
    const env = { ...like.env, ...overrides };
    for (const [key, value] of Object.entries(env)) if (value === undefined) delete env[key];
    const server = new Server(env, this.dir);
    this.servers.push(server);
    return server.start();
  }

  async cleanup() {
    await Promise.all(this.servers.map((s) => s.stop()));
    for (const schema of this.schemas) pythonSql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function pythonSql(statement) {
  const code = [
    "import sys",
    "from sqlalchemy import create_engine, text",
    "engine = create_engine(sys.argv[1], connect_args={'connect_timeout': 3})",
    "with engine.begin() as c: c.execute(text(sys.argv[2]))",
  ].join("\n");
  return spawnSync(PYTHON, ["-c", code, POSTGRES, statement], { encoding: "utf8", timeout: 60_000 });
}

export const textContent = (template) => ({ type: "text", template });

/** Prompt `name` with `versions` versions (template `v<N>`), version 1 deployed to production. */
export async function prepare(server, name = "p", versions = 3) {
  await server.ok("POST", "/v1/prompts", { name, content: textContent("v1 {{ who }}") });
  for (let n = 2; n <= versions; n++) {
    await server.ok("POST", `/v1/prompts/${encodeURIComponent(name)}/versions`, { content: textContent(`v${n} {{ who }}`) });
  }
  await server.ok("POST", `/v1/prompts/${encodeURIComponent(name)}/deployments`, { environment: "production", version: 1 });
}

export async function deploy(server, name, version, environment = "production") {
  return server.ok("POST", `/v1/prompts/${encodeURIComponent(name)}/deployments`, { environment, version });
}
