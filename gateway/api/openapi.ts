/** Builds the OpenAPI 3.1 document from the route declarations (JSON Schema 2020-12 from zod's own converter). */
import { z } from 'zod';
import { ErrorBody } from './schemas.js';
import type { RouteSpec } from './route.js';

type JsonSchema = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: 'input' | 'output', components: Record<string, JsonSchema>): JsonSchema {
  // Named schemas (.meta({id})) become components; references point at #/components/schemas/<id>.
  const generated = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' });
  const relinked = JSON.parse(JSON.stringify(generated).replaceAll('"#/$defs/', '"#/components/schemas/')) as JsonSchema;
  const { $schema: _drop, $defs, ...rest } = relinked as JsonSchema & { $defs?: Record<string, JsonSchema> };
  for (const [id, def] of Object.entries($defs ?? {})) components[id] = def;
  // A named root comes back as a $ref into its own $defs entry, which was just registered above.
  if (typeof rest.$ref === 'string' && Object.keys(rest).length === 1) return rest;
  const id = schema.meta()?.id;
  if (typeof id === 'string') {
    components[id] = rest;
    return { $ref: `#/components/schemas/${id}` };
  }
  return rest;
}

const openApiPath = (path: string) => `/v1${path.replace(/:([A-Za-z]+)/g, '{$1}')}`;

export function buildOpenApi(routes: readonly RouteSpec[], info: { title: string; version: string; serverUrl?: string }): Record<string, unknown> {
  const components: Record<string, JsonSchema> = {};
  const paths: Record<string, Record<string, unknown>> = {};
  const errorRef = jsonSchema(ErrorBody, 'output', components);
  for (const r of routes) {
    const parameters: unknown[] = [];
    for (const [where, schema] of [['path', r.params], ['query', r.query]] as const) {
      if (!schema) continue;
      const obj = jsonSchema(schema, 'input', components) as { properties?: Record<string, JsonSchema>; required?: string[] };
      for (const [name, s] of Object.entries(obj.properties ?? {})) {
        parameters.push({
          name,
          in: where,
          required: where === 'path' || (obj.required ?? []).includes(name),
          schema: s,
          ...(typeof s.description === 'string' && { description: s.description }),
        });
      }
    }
    if (r.method === 'post') {
      parameters.push({
        name: 'Idempotency-Key',
        in: 'header',
        required: false,
        description: 'Retrying a POST with the same key returns the first response instead of acting twice (kept 24 h by default)',
        schema: { type: 'string', maxLength: 255 },
      });
    }
    const responses: Record<string, unknown> = {};
    for (const [status, res] of Object.entries(r.responses)) {
      responses[status] = {
        description: res.description,
        ...(res.schema && { content: { 'application/json': { schema: jsonSchema(res.schema, 'output', components) } } }),
      };
    }
    const std = { description: 'Error', content: { 'application/json': { schema: errorRef } } };
    Object.assign(responses, { 400: std, 401: { ...std, description: 'Missing or wrong API key' }, 403: { ...std, description: `The key lacks the "${r.scope}" scope` }, 429: { ...std, description: 'Rate limit exceeded (see Retry-After)' } });
    (paths[openApiPath(r.path)] ??= {})[r.method] = {
      operationId: r.operationId,
      summary: r.summary,
      ...(r.description && { description: r.description }),
      tags: [r.tag],
      security: [{ apiKey: [r.scope] }],
      'x-required-scope': r.scope,
      ...(parameters.length > 0 && { parameters }),
      ...(r.body && { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(r.body, 'input', components) } } } }),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: info.title,
      version: info.version,
      description:
        'Hand-off API: read conversations and transcripts, reply as an agent on the customer\'s own channel, hand conversations over, back and close, and manage outbound webhooks. Authenticate with "Authorization: Bearer <api key>"; each key has scopes read, reply and/or admin (admin implies the others).',
    },
    ...(info.serverUrl && { servers: [{ url: info.serverUrl }] }),
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    paths,
    components: { schemas: components, securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'An API key from the api.keys config' } } },
  };
}
