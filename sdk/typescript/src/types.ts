/**
 * The server's responses that this SDK returns, as TypeScript types. They are written out here (the
 * published package needs no generator), and `test/types/openapi-check.ts` proves each one equal to the
 * type `openapi-typescript` generates from the server's OpenAPI document (`tests/data/openapi.json`,
 * itself checked against the live app by `tests/test_openapi_snapshot.py`), so they cannot drift.
 */

export type JsonObject = { [key: string]: unknown };

export interface ResolveRead {
  name: string;
  version: number;
  environment: string | null;
  content: JsonObject;
  variables: string[];
  placeholders: string[];
  revision: number | null;
  deployed_at: string | null;
  at?: string | null;
  experiment?: JsonObject | null;
  assignment?: JsonObject | null;
}

export interface RenderRead {
  name: string;
  version: number;
  environment: string | null;
  type: "text" | "chat";
  text?: string | null;
  messages?: JsonObject[] | null;
  config: JsonObject;
}

export interface ReleaseRead {
  version: number;
  previous_version: number | null;
  revision: number;
  deployed_at: string;
  deployed_by: string;
}

export interface VersionRead {
  prompt: string;
  number: number;
  content: JsonObject;
  variables: string[];
  placeholders: string[];
  content_hash: string;
  parent: number | null;
  author: string;
  message: string;
  created_at: string;
  status: "draft" | "testing" | "production" | "archived";
  environments: string[];
}

export interface PromptCreated {
  name: string;
  description: string;
  owner: string | null;
  tags: string[];
  target_model: string | null;
  latest_version: number;
  created_by: string;
  created_at: string;
  updated_at: string;
  environments: { [key: string]: ReleaseRead | null };
  version: VersionRead;
}

export interface DeploymentRead {
  id: number;
  prompt: string;
  environment: string;
  version: number;
  previous_version: number | null;
  action: string;
  actor: string;
  reason: string;
  revision: number;
  at: string;
  experiment_id?: number | null;
}

export interface EventBatchRead {
  accepted: number;
  exposures: number;
  outcomes: number;
  untagged: number;
  generations: number;
}

export interface ErrorInfo {
  code: string;
  message: string;
  details: JsonObject;
}

export interface ErrorBody {
  error: ErrorInfo;
}

/** The plan in `ResolveRead.experiment` (an untyped object in the OpenAPI document). */
export interface ExperimentPlan {
  id: number;
  mode: "fixed" | "thompson" | "ucb" | string;
  seed: string;
  hash_version: number;
  coverage: number;
  variants: Array<{
    key: string;
    version: number;
    weight: number;
    content: JsonObject;
    variables?: string[];
    placeholders?: string[];
  }>;
}

type RunStatus = "queued" | "running" | "succeeded" | "failed";

/** A deploy that waits for evaluation runs (HTTP 202). */
export interface PendingDeploymentRead {
  id: number;
  prompt: string;
  environment: string;
  version: number;
  action: string;
  status: "waiting" | "deployed" | "refused" | "cancelled";
  run: number | null;
  run_status: RunStatus | null;
  baseline_run: number | null;
  baseline_run_status: RunStatus | null;
  actor: string;
  reason: string;
  deployment: number | null;
  message: string;
  details: JsonObject;
  created_at: string;
  finished_at: string | null;
}
