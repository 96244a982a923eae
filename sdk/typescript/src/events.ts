/**
 * Events waiting to be sent (exposures, outcomes, generations). `get(name, {unit})`, `logOutcome` and
 * `logGeneration` only append here (no I/O); the client posts batches to `/v1/events` in the background.
 * Bounded: beyond `MAX_PENDING` the oldest are dropped and counted, so a logging outage never grows memory.
 */

export const BATCH_SIZE = 1000;
export const MAX_PENDING = 100_000;
const OUTCOME_FIELDS = new Set([
  "completed", "thumbs", "rating", "edited", "regenerated", "latency_ms", "ttft_ms",
  "input_tokens", "output_tokens", "cost_usd", "safety_flag", "metrics",
]);

export type EventRecord = Record<string, unknown>;

export interface OutcomeFields {
  completed?: boolean;
  thumbs?: "up" | "down";
  rating?: number;
  edited?: boolean;
  regenerated?: boolean;
  latency_ms?: number;
  ttft_ms?: number;
  input_tokens?: number;
  output_tokens?: number;
  cost_usd?: number;
  safety_flag?: boolean;
  metrics?: Record<string, number | boolean>;
}

/** A batch keeps its Idempotency-Key across retries, so a batch re-sent after a lost answer counts once. */
export interface Batch {
  events: EventRecord[];
  key: string;
}

export function checkOutcome(fields: OutcomeFields): EventRecord {
  const unknown = Object.keys(fields).filter((k) => !OUTCOME_FIELDS.has(k)).sort();
  if (unknown.length) throw new RangeError(`unknown outcome field(s): ${unknown.join(", ")}`);
  if (fields.thumbs !== undefined && fields.thumbs !== "up" && fields.thumbs !== "down")
    throw new RangeError(`thumbs must be 'up' or 'down', not ${JSON.stringify(fields.thumbs)}`);
  if (fields.rating !== undefined && !(fields.rating >= 1 && fields.rating <= 5))
    throw new RangeError(`rating must lie in [1, 5], not ${fields.rating}`);
  const out: EventRecord = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== null) out[k] = v;
  if (Object.keys(out).length === 0)
    throw new RangeError("an outcome needs at least one field (completed, thumbs, rating, ...)");
  return out;
}

export class EventQueue {
  private items: EventRecord[] = [];
  private retry: Batch[] = [];
  dropped = 0;
  sent = 0;

  get length(): number {
    return this.items.length + this.retry.reduce((n, b) => n + b.events.length, 0);
  }

  push(event: EventRecord): void {
    this.items.push(event);
    if (this.items.length > MAX_PENDING) {
      const over = this.items.length - MAX_PENDING;
      this.items.splice(0, over);
      this.dropped += over;
    }
  }

  take(): Batch | null {
    const again = this.retry.shift();
    if (again) return again;
    if (this.items.length === 0) return null;
    return { events: this.items.splice(0, BATCH_SIZE), key: `events-${crypto.randomUUID()}` };
  }

  putBack(batch: Batch): void {
    this.retry.unshift(batch);
  }
}
