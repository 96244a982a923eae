/**
 * The error tree, mirroring the server's error codes (`promptkeeper/errors.py`) so that code catching
 * `NotFound` works the same against either SDK.
 *
 *     PromptKeeperError            500 internal_error
 *     ├── BadRequest               400 bad_request
 *     ├── Unauthorized             401 unauthorized
 *     ├── PermissionDenied         403 permission_denied
 *     ├── NotFound                 404 not_found
 *     ├── Conflict                 409 conflict
 *     │   ├── GateFailed           409 gate_failed
 *     │   ├── IdempotencyInProgress    409 idempotency_in_progress
 *     │   └── IdempotencyResponseLost  409 idempotency_response_lost
 *     ├── ValidationFailed         422 validation_failed
 *     │   └── IdempotencyKeyReused 422 idempotency_key_reused
 *     ├── TooManyRequests          429 too_many_requests
 *     └── Unavailable              503 unavailable
 *         └── PromptUnavailable    (SDK) no server, cache, snapshot or fallback had the prompt
 *
 * Template errors (`TemplateError`): `MissingVariables`, `RenderFailed`, and
 * `LocalRenderUnsupported` (the template is outside what this SDK renders identically to the server).
 */

export type ErrorDetails = Record<string, unknown>;

export class PromptKeeperError extends Error {
  static readonly code: string = "internal_error";
  static readonly status: number = 500;
  /** The server's machine-readable code (`not_found`, ...); an unknown code keeps the server's text. */
  readonly code: string;
  readonly status: number;
  readonly details: ErrorDetails;

  constructor(message: string, options: { details?: ErrorDetails; code?: string; status?: number; cause?: unknown } = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    const ctor = new.target as unknown as { code: string; status: number };
    this.name = new.target.name;
    this.code = options.code ?? ctor.code;
    this.status = options.status ?? ctor.status;
    this.details = options.details ?? {};
  }
}

export class BadRequest extends PromptKeeperError {
  static override readonly code: string = "bad_request";
  static override readonly status: number = 400;
}
export class Unauthorized extends PromptKeeperError {
  static override readonly code: string = "unauthorized";
  static override readonly status: number = 401;
}
export class PermissionDenied extends PromptKeeperError {
  static override readonly code: string = "permission_denied";
  static override readonly status: number = 403;
}
export class NotFound extends PromptKeeperError {
  static override readonly code: string = "not_found";
  static override readonly status: number = 404;
}
export class Conflict extends PromptKeeperError {
  static override readonly code: string = "conflict";
  static override readonly status: number = 409;
}
export class GateFailed extends Conflict {
  static override readonly code: string = "gate_failed";
}
/** Another attempt with the same Idempotency-Key is in flight; the SDK retries it by itself. */
export class IdempotencyInProgress extends Conflict {
  static override readonly code: string = "idempotency_in_progress";
}
/** The write happened but its answer was lost (the server died in between): read the resource. */
export class IdempotencyResponseLost extends Conflict {
  static override readonly code: string = "idempotency_response_lost";
}
export class ValidationFailed extends PromptKeeperError {
  static override readonly code: string = "validation_failed";
  static override readonly status: number = 422;
}
export class IdempotencyKeyReused extends ValidationFailed {
  static override readonly code: string = "idempotency_key_reused";
}
export class TooManyRequests extends PromptKeeperError {
  static override readonly code: string = "too_many_requests";
  static override readonly status: number = 429;
}
export class Unavailable extends PromptKeeperError {
  static override readonly code: string = "unavailable";
  static override readonly status: number = 503;
}

/** No source could provide the prompt: server, cache, snapshot and fallback all failed. */
export class PromptUnavailable extends Unavailable {
  static override readonly code: string = "prompt_unavailable";
  readonly prompt: string;
  readonly reason: string;
  constructor(name: string, reason: string, cause?: unknown) {
    super(`prompt '${name}' is unavailable: ${reason}`, { details: { prompt: name }, cause });
    this.prompt = name;
    this.reason = reason;
  }
}

export const ERRORS_BY_CODE: Readonly<Record<string, typeof PromptKeeperError>> = Object.freeze(
  Object.fromEntries(
    [
      PromptKeeperError,
      BadRequest,
      Unauthorized,
      PermissionDenied,
      NotFound,
      Conflict,
      GateFailed,
      IdempotencyInProgress,
      IdempotencyResponseLost,
      ValidationFailed,
      IdempotencyKeyReused,
      TooManyRequests,
      Unavailable,
    ].map((cls) => [cls.code, cls]),
  ),
);

/** Status codes the server answers without a domain code (FastAPI's own 404/405/413...). */
const BY_STATUS: Readonly<Record<number, typeof PromptKeeperError>> = {
  400: BadRequest,
  401: Unauthorized,
  403: PermissionDenied,
  404: NotFound,
  409: Conflict,
  422: ValidationFailed,
  429: TooManyRequests,
  503: Unavailable,
};

/** The documented error for a server answer `{"error": {code, message, details}}`. */
export function errorFromBody(status: number, body: unknown, url: string): PromptKeeperError {
  const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error;
  if (error && typeof error === "object" && typeof error.code === "string") {
    const cls = ERRORS_BY_CODE[error.code] ?? BY_STATUS[status] ?? PromptKeeperError;
    const details = error.details && typeof error.details === "object" ? (error.details as ErrorDetails) : {};
    return new cls(String(error.message ?? error.code), { details, code: error.code, status });
  }
  const cls = BY_STATUS[status] ?? PromptKeeperError;
  return new cls(`HTTP ${status} from ${url}`, { status });
}

export class TemplateError extends Error {
  readonly field: string | undefined;
  constructor(message: string, field?: string) {
    super(message);
    this.name = new.target.name;
    this.field = field;
  }
}

/** Rendering needed variables the caller did not pass; `names` lists every one. */
export class MissingVariables extends TemplateError {
  readonly names: readonly string[];
  constructor(names: readonly string[], field?: string) {
    super(`missing variable${names.length > 1 ? "s" : ""}: ${names.join(", ")}`, field);
    this.names = names;
  }
}

export class RenderFailed extends TemplateError {}

/** `renderLocal` was asked for something this SDK cannot render exactly as the server would:
 * use `await prompt.render()` (asks the server then) or `renderRemote`. */
export class LocalRenderUnsupported extends TemplateError {}
