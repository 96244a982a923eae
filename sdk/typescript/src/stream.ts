/**
 * Following `/v1/stream` (Server-Sent Events over `fetch` streaming) on the first server that answers,
 * reconnecting with `Last-Event-ID` (the server then replays what was missed) and backing off from
 * 0.5 s to 30 s while none does. A stream silent for longer than the read timeout (the server sends
 * keep-alives) is dropped and reconnected.
 */

import { sleep, unref, type FetchLike } from "./http.js";
import { lines, SseParser, type SseEvent } from "./sse.js";

export interface StreamHandlers {
  /** Connected to `base` (first time or again). */
  connected(base: string): void;
  event(event: SseEvent, base: string): void;
}

export class StreamFollower {
  connected = false;
  url: string | null = null;
  connects = 0;
  private readonly sse = new SseParser();
  private abort: AbortController | null = null;
  private stopped = false;

  constructor(
    private readonly urls: readonly string[],
    private readonly fetchImpl: FetchLike,
    private readonly headers: Readonly<Record<string, string>>,
    private readonly connectTimeout: number,
    private readonly readTimeout: number,
    private readonly handlers: StreamHandlers,
  ) {}

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }

  private async loop(): Promise<void> {
    let delay = 500;
    while (!this.stopped) {
      for (const base of this.urls) {
        if (this.stopped) return;
        const connected = await this.follow(base).catch(() => false);
        if (connected) delay = 500;
      }
      if (this.stopped) return;
      await sleep(delay);
      delay = Math.min(delay * 2, 30_000);
    }
  }

  /** Follow one server's stream until it ends; true if it connected. */
  private async follow(base: string): Promise<boolean> {
    const controller = new AbortController();
    this.abort = controller;
    const headers: Record<string, string> = { ...this.headers, Accept: "text/event-stream" };
    if (this.sse.lastId !== null) headers["Last-Event-ID"] = this.sse.lastId;
    let lastActivity = performance.now();
    const watchdog = setInterval(() => {
      if (performance.now() - lastActivity > this.readTimeout) controller.abort();
    }, Math.min(1000, this.readTimeout));
    unref(watchdog);
    const connect = setTimeout(() => controller.abort(), this.connectTimeout);
    unref(connect);
    try {
      const response = await this.fetchImpl(`${base}/v1/stream`, { headers, signal: controller.signal });
      clearTimeout(connect);
      if (response.status !== 200 || response.body === null) {
        await response.body?.cancel();
        return false; // streaming unavailable here: the client polls meanwhile
      }
      this.connected = true;
      this.url = base;
      this.connects++;
      lastActivity = performance.now();
      this.handlers.connected(base);
      for await (const line of lines(response.body, () => (lastActivity = performance.now()))) {
        const event = this.sse.feedLine(line);
        if (event !== null) this.handlers.event(event, base);
      }
      return true;
    } finally {
      clearTimeout(connect);
      clearInterval(watchdog);
      this.connected = false;
      this.url = null;
      if (!controller.signal.aborted) controller.abort();
    }
  }
}
