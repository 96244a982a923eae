/**
 * The requests that go to whichever server answers: registry writes (one Idempotency-Key for every
 * attempt on every URL, so a retry never writes twice), renders through `POST /v1/render`, and event
 * batches. Reads with their cache logic stay in the client.
 */

import { MissingVariables, RenderFailed, ValidationFailed } from "./errors.js";
import type { Batch } from "./events.js";
import { check, checkWrite, describe, isNetwork, send, sleep, type FetchLike } from "./http.js";
import type { ChatMessage, Rendered, Variables } from "./template.js";
import type { EventBatchRead, JsonObject, RenderRead } from "./types.js";

/** Writes wait longer than reads (a deploy may run gates), and retry on a schedule that outlasts the
 * server's "in progress" answer (Retry-After: 1) for a concurrent attempt with the same key. */
const WRITE_TIMEOUT = 30_000;
const WRITE_DELAYS = [0, 250, 500, 1000, 2000];

export class Transport {
  constructor(
    readonly urls: readonly string[],
    readonly fetchImpl: FetchLike,
    readonly headers: Readonly<Record<string, string>>,
    readonly timeout: number,
  ) {}

  jsonHeaders(): Record<string, string> {
    return { ...this.headers, "Content-Type": "application/json" };
  }

  async write<T>(path: string, body: JsonObject, key: string = crypto.randomUUID()): Promise<T> {
    const init = { method: "POST", headers: { ...this.jsonHeaders(), "Idempotency-Key": key }, body: JSON.stringify(body) };
    let last: unknown;
    for (const delay of WRITE_DELAYS) {
      if (delay) await sleep(delay);
      for (const base of this.urls) {
        const url = base + path;
        try {
          return await checkWrite<T>(await send(this.fetchImpl, url, init, WRITE_TIMEOUT), url);
        } catch (error) {
          if (!isNetwork(error)) throw error;
          last = error;
        }
      }
    }
    throw last;
  }

  /** The server's rendering of version `version` of `name`; its 422s as the template errors. */
  async render(name: string, version: number, variables: Variables): Promise<Rendered> {
    const body = JSON.stringify({ name, version, variables });
    let last: unknown;
    for (const base of this.urls) {
      const url = `${base}/v1/render`;
      try {
        const response = await check(
          await send(this.fetchImpl, url, { method: "POST", headers: this.jsonHeaders(), body }, this.timeout),
          url,
        );
        const rendered = (await response.json()) as RenderRead;
        return rendered.type === "chat" ? ((rendered.messages ?? []) as ChatMessage[]) : (rendered.text ?? "");
      } catch (error) {
        if (isNetwork(error)) {
          last = error;
          continue;
        }
        if (error instanceof ValidationFailed) {
          const missing = error.details.missing;
          const field = typeof error.details.field === "string" ? error.details.field : undefined;
          if (Array.isArray(missing)) throw new MissingVariables(missing.map(String), field);
          if (error.message.startsWith("rendering failed")) throw new RenderFailed(error.message, field);
        }
        throw error;
      }
    }
    throw new RenderFailed(`prompt '${name}' could not be rendered: no server answered (${describe(last)})`);
  }

  /** "sent", "refused" (for good: retrying cannot help) or "failed" (no server took it: try later). */
  async postEvents(batch: Batch): Promise<"sent" | "refused" | "failed"> {
    const init = {
      method: "POST",
      headers: { ...this.jsonHeaders(), "Idempotency-Key": batch.key },
      body: JSON.stringify({ events: batch.events }),
    };
    for (const base of this.urls) {
      let response: Response;
      try {
        response = await send(this.fetchImpl, `${base}/v1/events`, init, this.timeout);
      } catch {
        continue;
      }
      if (response.status >= 500 || response.status === 429) {
        await response.body?.cancel();
        continue;
      }
      if (response.status >= 400) {
        await response.body?.cancel();
        return "refused";
      }
      (await response.json()) as EventBatchRead;
      return "sent";
    }
    return "failed";
  }
}
