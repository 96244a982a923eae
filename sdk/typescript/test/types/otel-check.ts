// Compile-time proof that `prompt.otelAttributes()` is an OpenTelemetry JS `Attributes` as it is: passed
// to `startSpan` or `setAttributes` with no cast, while the SDK itself imports nothing of OpenTelemetry.

import type { Attributes, Span } from "@opentelemetry/api";
import type { OtelAttributes, Prompt } from "../../src/prompt.js";

export function link(prompt: Prompt, span: Span): Attributes {
  span.setAttributes(prompt.otelAttributes());
  const attributes: OtelAttributes = prompt.otelAttributes();
  return attributes;
}
