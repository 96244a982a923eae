/**
 * `PromptKeeper`: fetch prompts by name, serve them from memory, keep them fresh in the background.
 *
 * The cache is `entries.get(environment).get(name)`: a hit (`getCached`) is two Map lookups and a clock
 * read, allocates nothing and returns the cached `Prompt` itself. Changes are pushed over the server's
 * `/v1/stream` (Server-Sent Events over `fetch` streaming); while no stream is up, cached entries are
 * revalidated with ETags every `pollInterval`. An expired entry is served while its refresh runs.
 *
 * A change announced on the stream is a promise that its revision exists: its refresh asks the
 * announcing server first and does not settle for an older answer from another instance (one that has not
 * heard of the change yet); such an answer is served only until a retry 0.1-2 s later (the Python SDK's
 * "announced-revision floor").
 *
 * When no server answers: the cached copy (however old), then the snapshot, then the caller's fallback,
 * and only then `PromptUnavailable`. Answers are not outages: an unknown prompt throws `NotFound`.
 */

import { assign } from "./assignment.js";
import { PromptUnavailable, ValidationFailed } from "./errors.js";
import { checkOutcome, EventQueue, type EventRecord, type OutcomeFields, BATCH_SIZE } from "./events.js";
import { check, describe, isNetwork, Retryable, send, sleep, unref, type FetchLike } from "./http.js";
import { Prompt, type Fallback, type StoredPrompt } from "./prompt.js";
import type { SseEvent } from "./sse.js";
import { StreamFollower } from "./stream.js";
import { Transport } from "./transport.js";
import type { Rendered, Variables } from "./template.js";
import type {
  DeploymentRead,
  ExperimentPlan,
  JsonObject,
  PendingDeploymentRead,
  PromptCreated,
  ResolveRead,
  VersionRead,
} from "./types.js";

/** Where the last-known-good copies live between processes (`fileSnapshot(path)` in Node). */
export interface SnapshotStore {
  load(): Record<string, StoredPrompt> | null;
  save(prompts: Record<string, StoredPrompt>): void;
}

export interface ClientOptions {
  /** Server URL, or URLs tried in order when one cannot be reached. */
  url: string | readonly string[];
  /** An API key (`runtime` suffices to read; `editor` to write). */
  apiKey: string;
  environment?: string;
  /** Seconds after which a cached prompt is revalidated in the background (served meanwhile). */
  cacheTtl?: number;
  /** `{name: fallback}`, used only when no server, cache or snapshot has the prompt. */
  fallbacks?: Record<string, Fallback>;
  /** Node: `fileSnapshot(path)` from `@promptkeeper/sdk/node`. Not available without a file system. */
  snapshot?: SnapshotStore | null;
  /** Per request timeout, seconds. */
  timeout?: number;
  /** Retries after network errors, 429 and 5xx (each tries every URL), with back-off from `backoff` s. */
  retries?: number;
  backoff?: number;
  /** Subscribe to `/v1/stream` for pushed changes (else: ETag polling every `pollInterval` s). */
  stream?: boolean;
  pollInterval?: number;
  /** Seconds without a byte (keep-alives included) after which the stream is reconnected. */
  streamReadTimeout?: number;
  /** A `fetch` implementation (default: the platform's). */
  fetch?: FetchLike;
  /** Seconds between event batches posted to `/v1/events`. */
  flushInterval?: number;
}

export interface GetOptions {
  environment?: string;
  version?: number;
  /** Alias of `environment` (the Langfuse word): a label is an environment. */
  label?: string;
  /** A user or session id: while an experiment runs, the variant assigned to it. */
  unit?: string;
  requestId?: string;
}

interface Entry {
  readonly prompt: Prompt;
  readonly expires: number;
}

interface Floor {
  revision: number;
  source: string | null;
  since: number;
  attempts: number;
}

export interface Stats {
  fetches: number;
  notModified: number;
  refreshFailures: number;
  streamEvents: number;
  olderThanAnnounced: number;
  streamConnects: number;
  /** Changes to an already-seen version served from the announcement, before the refresh answered. */
  servedOnAnnouncement: number;
}

const FAILED_REFRESH_DELAY = 5_000;
const FLOOR_RETRY_FIRST = 100;
const FLOOR_RETRY_MAX = 2_000;
const FLOOR_PATIENCE = 30_000;
const MAX_STICKY_UNITS = 100_000;
const SEP = "\u0000";
const KNOWN_VERSIONS = 16;

const now = (): number => performance.now();

function snapshotKey(name: string, environment: string | null, version: number | null): string {
  return version !== null ? `${name}@v${version}` : `${name}@${environment}`;
}

export class PromptKeeper {
  readonly urls: readonly string[];
  readonly environment: string;
  readonly stats: Stats = {
    fetches: 0,
    notModified: 0,
    refreshFailures: 0,
    streamEvents: 0,
    olderThanAnnounced: 0,
    streamConnects: 0,
    servedOnAnnouncement: 0,
  };
  /** Whether the event stream is connected now. */
  get streamConnected(): boolean {
    return this.stream?.connected ?? false;
  }

  /** The server whose event stream this client follows now, if any. */
  get streamUrl(): string | null {
    return this.stream?.url ?? null;
  }
  readonly events = new EventQueue();

  private readonly cacheTtl: number;
  private readonly timeout: number;
  private readonly retries: number;
  private readonly backoff: number;
  private readonly stream: StreamFollower | null;
  private readonly transport: Transport;
  private readonly pollInterval: number;
  private readonly fetchImpl: FetchLike;
  private readonly headers: Record<string, string>;
  private readonly fallbacks: Map<string, Fallback>;
  private readonly snapshotStore: SnapshotStore | null;
  private snapshot: Record<string, StoredPrompt> = {};
  private readonly entries = new Map<string, Map<string, Entry>>();
  private readonly pinned = new Map<string, Map<number, Prompt>>();
  /** Versions seen per name (immutable content), so a rollback to one is served on its announcement. */
  private readonly versions = new Map<string, Map<number, Prompt>>();
  private readonly floors = new Map<string, Floor>();
  private readonly retryTimers = new Map<string, unknown>();
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private draining = false;
  private readonly sticky = new Map<string, number>();
  private started = false;
  private closed = false;
  private timers: unknown[] = [];
  private readonly flushInterval: number;
  private readonly remote = (prompt: Prompt, variables: Variables): Promise<Rendered> => this.renderRemote(prompt, variables);

  constructor(options: ClientOptions) {
    const urls = typeof options.url === "string" ? [options.url] : [...options.url];
    if (urls.length === 0) throw new TypeError("PromptKeeper needs at least one server URL");
    if (!options.apiKey) throw new TypeError("PromptKeeper needs an API key (apiKey)");
    this.urls = urls.map((u) => u.replace(/\/+$/, ""));
    this.environment = options.environment ?? "production";
    this.cacheTtl = (options.cacheTtl ?? 60) * 1000;
    this.timeout = (options.timeout ?? 2) * 1000;
    this.retries = options.retries ?? 2;
    this.backoff = (options.backoff ?? 0.1) * 1000;
    this.pollInterval = (options.pollInterval ?? 30) * 1000;
    const streamReadTimeout = (options.streamReadTimeout ?? 60) * 1000;
    this.flushInterval = (options.flushInterval ?? 1) * 1000;
    for (const [label, value] of [
      ["cacheTtl", this.cacheTtl],
      ["retries", this.retries],
      ["backoff", this.backoff],
    ] as const) {
      if (!(value >= 0)) throw new RangeError(`${label} must be >= 0, not ${value}`);
    }
    for (const [label, value] of [
      ["timeout", this.timeout],
      ["pollInterval", this.pollInterval],
      ["streamReadTimeout", streamReadTimeout],
      ["flushInterval", this.flushInterval],
    ] as const) {
      if (!(value > 0)) throw new RangeError(`${label} must be > 0, not ${value / 1000}`);
    }
    const platformFetch = options.fetch ?? globalThis.fetch;
    if (typeof platformFetch !== "function") throw new TypeError("no fetch in this runtime: pass options.fetch");
    this.fetchImpl = platformFetch.bind(globalThis) as FetchLike;
    this.headers = { Authorization: `Bearer ${options.apiKey}`, "User-Agent": "promptkeeper-js" };
    this.fallbacks = new Map(Object.entries(options.fallbacks ?? {}));
    for (const [name, value] of this.fallbacks) Prompt.fromFallback(name, value, null); // a bad fallback is a bug
    this.transport = new Transport(this.urls, this.fetchImpl, this.headers, this.timeout);
    this.stream =
      options.stream === false
        ? null
        : new StreamFollower(this.urls, this.fetchImpl, this.headers, this.timeout, streamReadTimeout, {
            connected: () => {
              this.stats.streamConnects++;
              // changes made while not subscribed (before the first connect, or while reconnecting) are
              // not in the stream's backlog for a first connect: revalidate what is cached (mostly 304s)
              for (const key of this.cachedKeys()) this.enqueue(key);
            },
            event: (event, base) => this.onStreamEvent(event, base),
          });
    this.snapshotStore = options.snapshot ?? null;
    if (this.snapshotStore) this.snapshot = this.snapshotStore.load() ?? {};
  }

  // -- reading -----------------------------------------------------------------------------------------

  /**
   * The cached prompt, synchronously: no promise, no request, no allocation. `undefined` when this
   * client has not fetched it yet (call `await get()` once, e.g. at start-up). An expired entry is
   * returned while a background refresh runs.
   */
  getCached(name: string, options?: GetOptions): Prompt | undefined {
    if (options === undefined || (options.version === undefined && options.unit === undefined)) {
      const environment = options === undefined ? this.environment : (options.environment ?? options.label ?? this.environment);
      const entry = this.entries.get(environment)?.get(name);
      if (entry === undefined) return undefined;
      if (entry.expires < now()) this.refreshLater(environment, name);
      return entry.prompt;
    }
    if (options.version !== undefined) return this.pinned.get(name)?.get(options.version);
    const environment = options.environment ?? options.label ?? this.environment;
    const prompt = this.entries.get(environment)?.get(name)?.prompt;
    if (prompt === undefined || prompt.experiment === null) return prompt;
    const index = this.localVariant(prompt.experiment, options.unit!);
    return index === null ? undefined : this.serve(prompt, index, options.unit!, options.requestId);
  }

  /** The prompt an environment (default: the client's) serves, or a specific `version`. The first call
   * for a name waits for the server; later calls are answered from memory. */
  async get(name: string, options?: GetOptions): Promise<Prompt> {
    const version = options?.version;
    if (version !== undefined) {
      if (options?.unit !== undefined) throw new ValidationFailed("get: give either 'version' or 'unit', not both");
      return this.pinned.get(name)?.get(version) ?? this.first(name, null, version);
    }
    const environment = options?.environment ?? options?.label ?? this.environment;
    const entry = this.entries.get(environment)?.get(name);
    let prompt: Prompt;
    if (entry !== undefined) {
      if (entry.expires < now()) this.refreshLater(environment, name);
      prompt = entry.prompt;
    } else {
      prompt = await this.first(name, environment, null);
    }
    const unit = options?.unit;
    if (unit === undefined || prompt.experiment === null) return prompt;
    const index = this.localVariant(prompt.experiment, unit) ?? (await this.serverVariant(prompt, environment, unit));
    return this.serve(prompt, index, unit, options?.requestId);
  }

  /** Fetch several prompts at start-up, so that `getCached` finds them. */
  async preload(names: readonly string[], options?: GetOptions): Promise<Prompt[]> {
    return Promise.all(names.map((name) => this.get(name, options)));
  }

  // -- rendering through the server ----------------------------------------------------------------------

  /** `POST /v1/render` for the prompt's version: exactly the server's output. */
  async renderRemote(prompt: Prompt, variables: Variables): Promise<Rendered> {
    return this.transport.render(prompt.name, prompt.version, variables);
  }

  // -- writes ---------------------------------------------------------------------------------------------

  /** Create a prompt and its version 1 (an editor key). Safe to retry: one Idempotency-Key for every
   * attempt on every URL, so it is applied once. */
  async createPrompt(name: string, content: JsonObject, fields: JsonObject = {}): Promise<PromptCreated> {
    return this.transport.write<PromptCreated>("/v1/prompts", { name, content, ...fields });
  }

  async createVersion(
    name: string,
    content: JsonObject,
    options: { message?: string; baseVersion?: number; idempotencyKey?: string } = {},
  ): Promise<VersionRead> {
    const body: JsonObject = { content };
    if (options.message !== undefined) body.message = options.message;
    if (options.baseVersion !== undefined) body.base_version = options.baseVersion;
    return this.transport.write<VersionRead>(`${promptPath(name)}/versions`, body, options.idempotencyKey);
  }

  /** Deploy (or roll back to) `version`; a deploy held for evaluation runs answers a pending deployment. */
  async deploy(
    name: string,
    environment: string,
    version: number,
    options: { reason?: string; idempotencyKey?: string } = {},
  ): Promise<DeploymentRead | PendingDeploymentRead> {
    const body: JsonObject = { environment, version };
    if (options.reason !== undefined) body.reason = options.reason;
    return this.transport.write(`${promptPath(name)}/deployments`, body, options.idempotencyKey);
  }

  /** Roll `environment` back: to the version live before the current one, or to `version`. */
  async rollback(
    name: string,
    environment: string,
    options: { version?: number; reason?: string; idempotencyKey?: string } = {},
  ): Promise<DeploymentRead> {
    const body: JsonObject = { environment };
    if (options.version !== undefined) body.version = options.version;
    if (options.reason !== undefined) body.reason = options.reason;
    return this.transport.write(`${promptPath(name)}/rollback`, body, options.idempotencyKey);
  }

  // -- events ---------------------------------------------------------------------------------------------

  /** Queue what happened to a request (`prompt.requestId`); never blocks. Throws `RangeError` at once for
   * an unknown field or an impossible value. */
  logOutcome(requestId: string, fields: OutcomeFields): void {
    if (!requestId) throw new RangeError("logOutcome needs the request id of the prompt served (prompt.requestId)");
    this.events.push({ type: "outcome", request_id: requestId, at: new Date().toISOString(), ...checkOutcome(fields) });
    this.eventsAdded();
  }

  /** Queue what the model produced for `prompt`, for the server's monitors; returns the request id that
   * feedback is logged against, or null for a fallback prompt (no version to judge: nothing recorded). */
  logGeneration(
    prompt: Prompt,
    output: string,
    fields: {
      input?: unknown;
      requestId?: string;
      latencyMs?: number;
      ttftMs?: number;
      inputTokens?: number;
      outputTokens?: number;
      costUsd?: number;
    } = {},
  ): string | null {
    if (typeof output !== "string") throw new RangeError(`output must be a string, not ${typeof output}`);
    if (prompt.source === "fallback" || prompt.version < 1) return null;
    const requestId = fields.requestId ?? prompt.requestId ?? crypto.randomUUID().replaceAll("-", "");
    const event: EventRecord = {
      type: "generation",
      request_id: requestId,
      prompt: prompt.name,
      version: prompt.version,
      environment: prompt.environment ?? this.environment,
      output,
      at: new Date().toISOString(),
    };
    if (fields.input !== undefined) event.input = fields.input;
    const measured = {
      latency_ms: fields.latencyMs,
      ttft_ms: fields.ttftMs,
      input_tokens: fields.inputTokens,
      output_tokens: fields.outputTokens,
      cost_usd: fields.costUsd,
    };
    for (const [key, value] of Object.entries(measured)) {
      if (value === undefined) continue;
      if (typeof value !== "number" || !(value >= 0)) throw new RangeError(`${key} must be a non-negative number, not ${value}`);
      event[key] = value;
    }
    if (prompt.experimentId !== null && prompt.unit !== null) {
      event.experiment_id = prompt.experimentId;
      event.variant = prompt.variant;
      event.unit = prompt.unit;
    }
    this.events.push(event);
    this.eventsAdded();
    return requestId;
  }

  /** Send every queued event now; false when no server took them (they stay queued). */
  async flush(timeoutSeconds = 5): Promise<boolean> {
    const deadline = now() + timeoutSeconds * 1000;
    while (this.events.length && now() < deadline) {
      if (!(await this.sendBatch())) return false;
    }
    return this.events.length === 0;
  }

  /** Stop the stream and timers (flushing queued events first); the process can then exit. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.events.length) await this.flush(this.timeout / 1000);
    this.closed = true;
    this.stream?.stop();
    for (const timer of this.timers) clearInterval(timer as ReturnType<typeof setInterval>);
    for (const timer of this.retryTimers.values()) clearTimeout(timer as ReturnType<typeof setTimeout>);
    this.timers = [];
    this.retryTimers.clear();
  }

  private async sendBatch(): Promise<boolean> {
    const batch = this.events.take();
    if (batch === null) return true;
    const outcome = await this.transport.postEvents(batch);
    if (outcome === "sent") this.events.sent += batch.events.length;
    else if (outcome === "refused") this.events.dropped += batch.events.length;
    else this.events.putBack(batch);
    return outcome !== "failed";
  }

  private eventsAdded(): void {
    this.startBackground();
    if (this.events.length >= BATCH_SIZE) void this.flush(this.timeout / 1000);
  }

  // -- experiments ----------------------------------------------------------------------------------------

  /** The unit's variant index without I/O (-1: outside); null: only the server knows (bandits). */
  private localVariant(plan: ExperimentPlan, unit: string): number | null {
    if (plan.mode !== "fixed") return this.sticky.get(`${plan.id}${SEP}${unit}`) ?? null;
    return hashedVariant(plan, unit);
  }

  private async serverVariant(prompt: Prompt, environment: string, unit: string): Promise<number> {
    const plan = prompt.experiment!;
    const query = `?environment=${encodeURIComponent(environment)}&unit=${encodeURIComponent(unit)}`;
    for (const base of this.urls) {
      const url = base + resolvePath(prompt.name) + query;
      try {
        const response = await check(await send(this.fetchImpl, url, { headers: this.headers }, this.timeout), url);
        const assignment = ((await response.json()) as ResolveRead).assignment as
          | { experiment_id?: number; index?: number | null }
          | null
          | undefined;
        if (!assignment || assignment.experiment_id !== plan.id) break;
        const index = assignment.index === null || assignment.index === undefined ? -1 : Number(assignment.index);
        this.sticky.set(`${plan.id}${SEP}${unit}`, index);
        if (this.sticky.size > MAX_STICKY_UNITS) this.sticky.delete(this.sticky.keys().next().value!);
        return index;
      } catch (error) {
        if (isNetwork(error)) continue;
        break;
      }
    }
    return hashedVariant(plan, unit);
  }

  private serve(prompt: Prompt, index: number, unit: string, requestId?: string): Prompt {
    const variant = prompt.variants[index];
    if (index < 0 || variant === undefined) return prompt;
    const served = variant.servedTo(unit, requestId ?? crypto.randomUUID().replaceAll("-", ""));
    this.events.push({
      type: "exposure",
      request_id: served.requestId,
      experiment_id: served.experimentId,
      variant: served.variant,
      unit,
      prompt: served.name,
      version: served.version,
      at: new Date().toISOString(),
    });
    this.eventsAdded();
    return served;
  }

  // -- fetching -------------------------------------------------------------------------------------------

  /** The first answer of at least revision `floor`; else the newest answer had. */
  private async fetchPrompt(
    name: string,
    environment: string | null,
    version: number | null,
    previous: Prompt | null,
    urls: readonly string[] = this.urls,
    floor = 0,
  ): Promise<Prompt> {
    const query = version !== null ? `?version=${version}` : `?environment=${encodeURIComponent(environment ?? "production")}`;
    const headers: Record<string, string> = { ...this.headers };
    if (previous?.etag) headers["If-None-Match"] = previous.etag;
    let best: Prompt | null = null;
    let last: unknown;
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (attempt) await sleep(this.backoff * 2 ** (attempt - 1));
      for (const base of urls) {
        const url = base + resolvePath(name) + query;
        let response: Response;
        try {
          response = await check(await send(this.fetchImpl, url, { headers }, this.timeout), url);
        } catch (error) {
          if (!isNetwork(error)) throw error;
          last = error;
          continue;
        }
        this.stats.fetches++;
        let prompt: Prompt;
        if (response.status === 304 && previous !== null) {
          this.stats.notModified++;
          prompt = previous;
        } else {
          prompt = Prompt.fromResolve((await response.json()) as ResolveRead, response.headers.get("etag"), "server", this.remote);
        }
        if ((prompt.revision ?? 0) >= floor) return prompt;
        if (best === null || (prompt.revision ?? 0) > (best.revision ?? 0)) best = prompt;
      }
    }
    if (best !== null) return best;
    throw last;
  }

  private async first(name: string, environment: string | null, version: number | null): Promise<Prompt> {
    if (this.closed) throw new Error("the PromptKeeper client is closed");
    this.startBackground();
    let prompt: Prompt;
    try {
      prompt = await this.fetchPrompt(name, environment, version, null);
    } catch (error) {
      if (!isNetwork(error)) throw error;
      return this.offline(name, environment, version, error);
    }
    this.store(prompt, version !== null);
    return prompt;
  }

  /** Snapshot, then fallback, then `PromptUnavailable`: the order of last resorts. */
  private offline(name: string, environment: string | null, version: number | null, error: unknown): Prompt {
    const stored = this.snapshot[snapshotKey(name, environment, version)];
    if (stored !== undefined) {
      const prompt = Prompt.fromResolve(stored, stored.etag, "snapshot", this.remote);
      this.store(prompt, version !== null, 0); // refreshed as soon as a server answers again
      return prompt;
    }
    const fallback = this.fallbacks.get(name);
    if (fallback !== undefined) {
      const prompt = Prompt.fromFallback(name, fallback, environment);
      if (version === null) this.store(prompt, false, 0);
      return prompt;
    }
    const where = version !== null ? `version ${version}` : `environment '${environment}'`;
    throw new PromptUnavailable(
      name,
      `the server could not be reached for ${where} (${describe(error)}), and there is no cached copy, snapshot or fallback`,
      error,
    );
  }

  private store(prompt: Prompt, pinned: boolean, ttl: number = this.cacheTtl): void {
    if (pinned) {
      let byName = this.pinned.get(prompt.name);
      if (byName === undefined) this.pinned.set(prompt.name, (byName = new Map()));
      byName.set(prompt.version, prompt);
    } else {
      const environment = prompt.environment ?? this.environment;
      let byEnvironment = this.entries.get(environment);
      if (byEnvironment === undefined) this.entries.set(environment, (byEnvironment = new Map()));
      byEnvironment.set(prompt.name, { prompt, expires: now() + ttl });
    }
    if (prompt.source === "server" && prompt.experiment === null) {
      let known = this.versions.get(prompt.name);
      if (known === undefined) this.versions.set(prompt.name, (known = new Map()));
      known.delete(prompt.version);
      known.set(prompt.version, prompt);
      if (known.size > KNOWN_VERSIONS) known.delete(known.keys().next().value!);
    }
    if (prompt.source === "server" && this.snapshotStore !== null) {
      const key = snapshotKey(prompt.name, prompt.environment, pinned ? prompt.version : null);
      const current = this.snapshot[key];
      if (current !== undefined && prompt.etag !== null && current.etag === prompt.etag) return;
      this.snapshot = { ...this.snapshot, [key]: prompt.toJSON() };
      try {
        this.snapshotStore.save(this.snapshot);
      } catch {
        // a snapshot that cannot be written must not break serving
      }
    }
  }

  private cached(environment: string, name: string): Prompt | undefined {
    return this.entries.get(environment)?.get(name)?.prompt;
  }

  private cachedKeys(): string[] {
    const keys: string[] = [];
    for (const [environment, byName] of this.entries) for (const name of byName.keys()) keys.push(environment + SEP + name);
    return keys;
  }

  private refreshLater(environment: string, name: string): void {
    this.enqueue(environment + SEP + name);
  }

  private enqueue(key: string): void {
    if (this.closed || this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    if (!this.draining) void this.drain();
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length && !this.closed) {
        const key = this.queue.shift()!;
        this.queued.delete(key);
        await this.refreshOne(key);
      }
    } finally {
      this.draining = false;
    }
  }

  private async refreshOne(key: string): Promise<void> {
    const split = key.indexOf(SEP);
    const environment = key.slice(0, split);
    const name = key.slice(split + 1);
    const previous = this.cached(environment, name);
    const usable = previous !== undefined && previous.source === "server" ? previous : null;
    const floor = this.floors.get(key);
    let urls = this.urls;
    if (floor?.source && this.urls.includes(floor.source)) urls = [floor.source, ...this.urls.filter((u) => u !== floor.source)];
    let prompt: Prompt;
    try {
      prompt = await this.fetchPrompt(name, environment, null, usable, urls, floor?.revision ?? 0);
    } catch {
      this.stats.refreshFailures++;
      if (previous !== undefined) this.store(previous, false, Math.min(this.cacheTtl, FAILED_REFRESH_DELAY));
      return;
    }
    this.settle(key, environment, name, prompt);
  }

  /** Store a refresh's answer for the TTL, unless it is older than the announced revision. */
  private settle(key: string, environment: string, name: string, prompt: Prompt): void {
    let floor = this.floors.get(key);
    const revision = prompt.revision ?? 0;
    const held = this.cached(environment, name);
    if (floor === undefined && held !== undefined && held.source === "server" && revision < (held.revision ?? 0)) {
      // an instance behind the one we heard from: what we serve is a floor too (ask the stream's server)
      floor = { revision: held.revision ?? 0, source: this.streamUrl, since: now(), attempts: 0 };
      this.floors.set(key, floor);
    }
    if (floor !== undefined && revision < floor.revision && now() - floor.since <= FLOOR_PATIENCE) {
      this.stats.olderThanAnnounced++;
      const delay = Math.min(FLOOR_RETRY_MAX, FLOOR_RETRY_FIRST * 2 ** floor.attempts);
      floor.attempts++;
      const previous = this.cached(environment, name);
      this.store(previous !== undefined && (previous.revision ?? 0) >= revision ? previous : prompt, false, delay);
      const timer = setTimeout(() => {
        this.retryTimers.delete(key);
        this.enqueue(key);
      }, delay);
      unref(timer);
      this.retryTimers.set(key, timer);
      return;
    }
    this.floors.delete(key);
    const timer = this.retryTimers.get(key);
    if (timer !== undefined) clearTimeout(timer as ReturnType<typeof setTimeout>);
    this.retryTimers.delete(key);
    this.store(prompt, false);
  }

  // -- background: stream, polling, events ------------------------------------------------------------------

  private startBackground(): void {
    if (this.started || this.closed) return;
    this.started = true;
    const poll = setInterval(() => {
      if (!this.streamConnected) for (const key of this.cachedKeys()) this.enqueue(key);
    }, this.pollInterval);
    const sender = setInterval(() => {
      if (this.events.length) void this.flush(this.timeout / 1000);
    }, this.flushInterval);
    unref(poll);
    unref(sender);
    this.timers.push(poll, sender);
    if (this.stream !== null) this.stream.start();
  }

  private onStreamEvent(event: SseEvent, source: string): void {
    if (event.event !== "release") return;
    this.stats.streamEvents++;
    let change: { prompt?: unknown; environment?: unknown; version?: unknown; revision?: unknown };
    try {
      change = JSON.parse(event.data) as typeof change;
    } catch {
      return;
    }
    if (typeof change.prompt !== "string" || typeof change.environment !== "string") return;
    const revision = Number(change.revision);
    if (!Number.isFinite(revision)) return;
    const current = this.cached(change.environment, change.prompt);
    if (current === undefined || (current.revision ?? 0) >= revision) return;
    const key = change.environment + SEP + change.prompt;
    const floor = this.floors.get(key);
    if (floor === undefined || floor.revision < revision) this.floors.set(key, { revision, source, since: now(), attempts: 0 });
    // A version's content never changes: when the change moves to a version already seen (a rollback,
    // typically), serve it at once. The refresh still runs and replaces it with the server's answer
    // (which also brings an experiment, if the change started one).
    const version = Number(change.version);
    const known = this.versions.get(change.prompt)?.get(version);
    if (known !== undefined && version !== current.version && current.experiment === null && current.source === "server") {
      const announced = new Prompt({
        name: known.name,
        version,
        environment: change.environment,
        revision,
        content: known.content,
        variables: known.variables,
        placeholders: known.placeholders,
        remote: this.remote,
      });
      this.entries.get(change.environment)?.set(change.prompt, { prompt: announced, expires: now() + this.cacheTtl });
      this.stats.servedOnAnnouncement++;
    }
    this.enqueue(key);
  }
}

function hashedVariant(plan: ExperimentPlan, unit: string): number {
  return assign({
    seed: plan.seed,
    unit,
    weights: plan.variants.map((v) => v.weight),
    coverage: plan.coverage,
    hashVersion: plan.hash_version,
  });
}

function promptPath(name: string): string {
  return `/v1/prompts/${encodeURIComponent(name)}`;
}

function resolvePath(name: string): string {
  return `/v1/resolve/${encodeURIComponent(name)}`;
}

export { Retryable };
