/** Server-Sent Events over `fetch` streaming: the subset `/v1/stream` emits (`id`, `event`, `data`). */

export interface SseEvent {
  event: string;
  data: string;
  id: string | null;
}

export class SseParser {
  private event = "message";
  private data: string[] = [];
  private id: string | null = null;
  lastId: string | null = null;

  /** Feed one line without its newline; returns an event when a blank line completes one. */
  feedLine(line: string): SseEvent | null {
    if (line === "") {
      if (this.data.length === 0 && this.event === "message") return null;
      const out: SseEvent = { event: this.event, data: this.data.join("\n"), id: this.id };
      if (this.id !== null) this.lastId = this.id;
      this.event = "message";
      this.data = [];
      this.id = null;
      return out;
    }
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id") this.id = value;
    return null;
  }
}

/** Lines of a streamed body, decoded as UTF-8; `onActivity` is called for every chunk (keep-alives too). */
export async function* lines(body: ReadableStream<Uint8Array>, onActivity: () => void): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      onActivity();
      buffer += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        const width = buffer.startsWith("\r\n", newline) ? 2 : 1;
        buffer = buffer.slice(newline + width);
        yield line;
      }
    }
  } finally {
    reader.releaseLock();
  }
}
