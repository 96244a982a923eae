/** The `Prompt` the SDK hands to applications. */

import { LocalRenderUnsupported, RenderFailed } from "./errors.js";
import {
  localRender,
  placeholdersOf,
  simpleVariables,
  unsupported,
  type ChatMessage,
  type PromptContent,
  type Rendered,
  type Variables,
} from "./template.js";
import type { ExperimentPlan, JsonObject, ResolveRead } from "./types.js";

export type Source = "server" | "snapshot" | "fallback";
/** A caller's fallback: a template string (text), a list of messages (chat), or a content object. */
export type Fallback = string | Array<Record<string, unknown>> | PromptContent;

/** Renders through the server (`POST /v1/render`); given to prompts by their client. */
export type RemoteRenderer = (prompt: Prompt, variables: Variables) => Promise<Rendered>;

/**
 * Span attributes: string and number values only, so the object is an OpenTelemetry JS `Attributes`
 * (`@opentelemetry/api`) as it is, while the SDK itself stays free of dependencies.
 */
export type OtelAttributes = Record<string, string | number>;

/** What the snapshot file and `toJSON` keep of a prompt. */
export interface StoredPrompt {
  name: string;
  version: number;
  environment: string | null;
  revision: number | null;
  content: JsonObject;
  variables: string[];
  placeholders: string[];
  etag: string | null;
  experiment?: JsonObject | null;
}

/**
 * One resolved prompt version; immutable. `source` says where it came from: `server` (possibly served
 * from the in-memory cache), `snapshot` (the last-known-good file, when no server answered) or
 * `fallback` (the caller's own, version 0).
 *
 * Rendering: `renderLocal()` is synchronous and only renders what is proven identical to the server
 * (throws `LocalRenderUnsupported` otherwise); `await render()` renders locally when it can and asks the
 * server otherwise; `await renderRemote()` always asks the server. `renderedLocally(variables)` says which.
 */
export class Prompt {
  readonly name: string;
  readonly version: number;
  readonly environment: string | null;
  readonly revision: number | null;
  readonly content: PromptContent;
  readonly variables: readonly string[];
  readonly placeholders: readonly string[];
  readonly source: Source;
  readonly etag: string | null;
  readonly experiment: ExperimentPlan | null;
  readonly variants: readonly Prompt[];
  readonly experimentId: number | null;
  readonly variant: string | null;
  readonly unit: string | null;
  readonly requestId: string | null;
  /** @internal */
  readonly remote: RemoteRenderer | null;

  constructor(fields: {
    name: string;
    version: number;
    environment: string | null;
    revision: number | null;
    content: PromptContent;
    variables: readonly string[];
    placeholders: readonly string[];
    source?: Source;
    etag?: string | null;
    experiment?: ExperimentPlan | null;
    experimentId?: number | null;
    variant?: string | null;
    unit?: string | null;
    requestId?: string | null;
    remote?: RemoteRenderer | null;
  }) {
    this.name = fields.name;
    this.version = fields.version;
    this.environment = fields.environment;
    this.revision = fields.revision;
    this.content = fields.content;
    this.variables = fields.variables;
    this.placeholders = fields.placeholders;
    this.source = fields.source ?? "server";
    this.etag = fields.etag ?? null;
    this.experiment = fields.experiment ?? null;
    this.experimentId = fields.experimentId ?? null;
    this.variant = fields.variant ?? null;
    this.unit = fields.unit ?? null;
    this.requestId = fields.requestId ?? null;
    this.remote = fields.remote ?? null;
    const plan = this.experiment;
    this.variants = plan
      ? plan.variants.map(
          (v) =>
            new Prompt({
              name: this.name,
              version: v.version,
              environment: this.environment,
              revision: this.revision,
              content: v.content as PromptContent,
              variables: v.variables ?? [],
              placeholders: v.placeholders ?? [],
              source: this.source,
              etag: this.etag,
              experimentId: plan.id,
              variant: v.key,
              remote: this.remote,
            }),
        )
      : [];
    Object.freeze(this);
  }

  get type(): "text" | "chat" {
    return this.content.type === "chat" ? "chat" : "text";
  }

  /** The version's model configuration (`model`, `temperature`, ...). */
  get config(): Record<string, unknown> {
    return (this.content.config as Record<string, unknown> | undefined) ?? {};
  }

  get template(): string | null {
    return this.type === "text" ? (this.content.template ?? "") : null;
  }

  get messages(): ReadonlyArray<Record<string, unknown>> {
    return this.type === "chat" ? (this.content.messages ?? []) : [];
  }

  /** Whether `renderLocal(variables)` would render (true) or throw `LocalRenderUnsupported`. */
  renderedLocally(variables: Variables = {}): boolean {
    try {
      return localRender(this.content, variables, this) !== null;
    } catch (error) {
      return !(error instanceof LocalRenderUnsupported);
    }
  }

  /** Synchronous, no I/O; only for templates and values proven identical to the server's output. */
  renderLocal(variables: Variables = {}): Rendered {
    const out = localRender(this.content, variables, this);
    if (out === null) throw unsupported(this.name);
    return out;
  }

  /** A string (text prompt) or `{role, content}` messages (chat): locally when proven identical, else
   * through the server. Throws `MissingVariables` (every missing name) or `RenderFailed`. */
  async render(variables: Variables = {}): Promise<Rendered> {
    const out = localRender(this.content, variables, this);
    return out !== null ? out : this.renderRemote(variables);
  }

  /** Always through the server's `POST /v1/render`, for this prompt's version. */
  async renderRemote(variables: Variables = {}): Promise<Rendered> {
    if (this.remote === null || this.version < 1) {
      throw new RenderFailed(
        `prompt '${this.name}' is a fallback (no version on the server to render); ` +
          "keep fallbacks to text and {{ name }} so that they render locally",
      );
    }
    return this.remote(this, variables);
  }

  /** OpenAI's `messages`: a text prompt becomes one user message. */
  async openaiMessages(variables: Variables = {}): Promise<ChatMessage[]> {
    const out = await this.render(variables);
    return typeof out === "string" ? [{ role: "user", content: out }] : out;
  }

  /**
   * OpenTelemetry span attributes that link the span of the model call to this version: the server's
   * OTLP receiver (`/otlp/v1/traces`) turns such a span into a generation record for the monitors and,
   * for a prompt served to a unit in an experiment, an outcome of the variant served
   * (docs/opentelemetry.md). The keys and rules are the Python SDK's `Prompt.otel_attributes()`: they
   * are the contract, whichever SDK set them. Empty for a caller's fallback: no version to credit.
   *
   *     tracer.startActiveSpan("chat", { attributes: prompt.otelAttributes() }, (span) => ...)
   */
  otelAttributes(): OtelAttributes {
    if (this.source === "fallback" || this.version < 1) return {};
    const attributes: OtelAttributes = {
      "promptkeeper.prompt.name": this.name,
      "promptkeeper.prompt.version": this.version,
    };
    if (this.environment !== null) attributes["promptkeeper.prompt.environment"] = this.environment;
    if (this.requestId !== null) attributes["promptkeeper.prompt.request_id"] = this.requestId;
    if (this.unit !== null) attributes["promptkeeper.prompt.unit"] = this.unit;
    // a variant in the plan (not served to a unit) is no outcome: no exposure would claim it
    if (this.experimentId !== null && this.variant !== null && this.unit !== null) {
      attributes["promptkeeper.prompt.experiment"] = this.experimentId;
      attributes["promptkeeper.prompt.variant"] = this.variant;
    }
    return attributes;
  }

  toJSON(): StoredPrompt {
    return {
      name: this.name,
      version: this.version,
      environment: this.environment,
      revision: this.revision,
      content: this.content,
      variables: [...this.variables],
      placeholders: [...this.placeholders],
      etag: this.etag,
      ...(this.experiment ? { experiment: this.experiment as unknown as JsonObject } : {}),
    };
  }

  /** @internal */
  static fromResolve(
    body: ResolveRead | StoredPrompt,
    etag: string | null,
    source: Source,
    remote: RemoteRenderer | null,
  ): Prompt {
    return new Prompt({
      name: body.name,
      version: body.version,
      environment: body.environment ?? null,
      revision: body.revision ?? null,
      content: body.content as PromptContent,
      variables: body.variables ?? [],
      placeholders: body.placeholders ?? [],
      source,
      etag,
      experiment: (body.experiment as unknown as ExperimentPlan | null | undefined) ?? null,
      remote,
    });
  }

  /** @internal */
  static fromFallback(name: string, fallback: Fallback, environment: string | null): Prompt {
    let content: PromptContent;
    if (typeof fallback === "string") content = { type: "text", template: fallback };
    else if (Array.isArray(fallback)) content = { type: "chat", messages: fallback };
    else if (fallback && typeof fallback === "object" && (fallback.type === "text" || fallback.type === "chat"))
      content = { ...fallback };
    else
      throw new TypeError(
        `fallback for '${name}' must be a template string, a list of messages or a content object with 'type'`,
      );
    const variables = simpleVariables(content);
    if (variables === null) {
      throw new TypeError(
        `fallback for '${name}' uses template syntax beyond {{ name }}: a fallback is used when the server ` +
          "cannot be reached, so it must render locally",
      );
    }
    return new Prompt({
      name,
      version: 0,
      environment,
      revision: null,
      content,
      variables,
      placeholders: placeholdersOf(content),
      source: "fallback",
    });
  }

  /** @internal this variant as served to one unit for one request */
  servedTo(unit: string, requestId: string): Prompt {
    return new Prompt({ ...this, experiment: null, unit, requestId });
  }
}
