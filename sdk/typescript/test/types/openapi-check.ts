// Compile-time proof that the SDK's response types are the server's: each type in src/types.ts must be
// mutually assignable with the type openapi-typescript generates from tests/data/openapi.json (the
// snapshot tests/test_openapi_snapshot.py holds to the live app). A field added, removed, renamed,
// made optional or nullable on either side fails `tsc -p tsconfig.types.json`.

import type { components, paths } from "../../generated/openapi.js";
import type * as sdk from "../../src/types.js";

type Schemas = components["schemas"];
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
function same<T extends true>(): T | undefined {
  return undefined;
}

same<Same<sdk.ResolveRead, Schemas["ResolveRead"]>>();
same<Same<sdk.RenderRead, Schemas["RenderRead"]>>();
same<Same<sdk.VersionRead, Schemas["VersionRead"]>>();
same<Same<sdk.PromptCreated, Schemas["PromptCreated"]>>();
same<Same<sdk.ReleaseRead, Schemas["ReleaseRead"]>>();
same<Same<sdk.DeploymentRead, Schemas["DeploymentRead"]>>();
same<Same<sdk.PendingDeploymentRead, Schemas["PendingDeploymentRead"]>>();
same<Same<sdk.EventBatchRead, Schemas["EventBatchRead"]>>();
same<Same<sdk.ErrorBody, Schemas["ErrorBody"]>>();

// ...and each is what the route the SDK calls answers.
type Json<T> = T extends { content: { "application/json": infer B } } ? B : never;
same<Same<sdk.ResolveRead, Json<paths["/v1/resolve/{name}"]["get"]["responses"][200]>>>();
same<Same<sdk.RenderRead, Json<paths["/v1/render"]["post"]["responses"][200]>>>();
same<Same<sdk.PromptCreated, Json<paths["/v1/prompts"]["post"]["responses"][201]>>>();
same<Same<sdk.VersionRead, Json<paths["/v1/prompts/{name}/versions"]["post"]["responses"][201]>>>();
same<Same<sdk.DeploymentRead, Json<paths["/v1/prompts/{name}/deployments"]["post"]["responses"][201]>>>();
same<Same<sdk.PendingDeploymentRead, Json<paths["/v1/prompts/{name}/deployments"]["post"]["responses"][202]>>>();
same<Same<sdk.EventBatchRead, Json<paths["/v1/events"]["post"]["responses"][200]>>>();
same<Same<sdk.ErrorBody, Json<paths["/v1/render"]["post"]["responses"]["4XX"]>>>();
