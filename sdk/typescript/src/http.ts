/** Requests with timeouts, failover across server URLs, and the mapping of answers onto errors. */

import { errorFromBody, PromptKeeperError } from "./errors.js";

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** A failure worth retrying on another URL or later: the network, a timeout, 429 or 5xx. */
export class Retryable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "Retryable";
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    unref(timer);
  });
}

/** Timers never keep a Node process alive (no-op where timers are numbers). */
export function unref(timer: unknown): void {
  (timer as { unref?: () => void } | null)?.unref?.();
}

export function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? ` (${error.cause.message})` : "";
    return `${error.name}: ${error.message}${cause}`;
  }
  return String(error);
}

/** One request; network failures and timeouts become `Retryable`. */
export async function send(fetchImpl: FetchLike, url: string, init: RequestInit, timeoutMs: number): Promise<Response> {
  try {
    return await fetchImpl(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    throw new Retryable(`${init.method ?? "GET"} ${url} failed: ${describe(error)}`, { cause: error });
  }
}

async function bodyOf(response: Response): Promise<unknown> {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

/** `Retryable` for 429/5xx, the mapped error for other failures, else the response. */
export async function check(response: Response, url: string): Promise<Response> {
  if (response.status === 429 || response.status >= 500) {
    await response.body?.cancel();
    throw new Retryable(`HTTP ${response.status} from ${url}`);
  }
  if (response.status >= 400) throw errorFromBody(response.status, await bodyOf(response), url);
  return response;
}

/** A write's answer: `Retryable` while another attempt with the same key is in flight. */
export async function checkWrite<T>(response: Response, url: string): Promise<T> {
  if (response.status === 409) {
    const body = await bodyOf(response);
    const error = errorFromBody(409, body, url);
    if (error.code === "idempotency_in_progress") throw new Retryable(`HTTP 409 from ${url}: the same write is in progress`);
    throw error;
  }
  await check(response, url);
  return (await response.json()) as T;
}

export function isNetwork(error: unknown): error is Retryable {
  return error instanceof Retryable;
}

export { PromptKeeperError };
