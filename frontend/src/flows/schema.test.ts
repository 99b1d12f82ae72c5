import { describe, expect, it } from 'vitest';
import serverSchema from './fixtures/flow-schema.json';
import { FALLBACK_SCHEMA, NODE_TYPES, formFriendly, nodeTypesFromSchema, resolveRef, type JsonSchema } from './schema';

// The fixture is the backend's own `FlowDocument.model_json_schema(by_alias=True)` (flows/document.py).
const schema = serverSchema as JsonSchema;

describe('nodeTypesFromSchema on the server’s schema', () => {
  const specs = nodeTypesFromSchema(schema);
  const byType = Object.fromEntries(specs.map((s) => [s.type, s]));

  it('finds every node type of the discriminated union, in the palette’s order', () => {
    for (const t of NODE_TYPES) expect(byType[t], t).toBeDefined();
    expect(specs.slice(0, NODE_TYPES.length).map((s) => s.type)).toEqual([...NODE_TYPES]);
  });

  it('leaves id, type and position out of the forms', () => {
    for (const s of specs) {
      const props = s.formSchema.properties as Record<string, unknown>;
      expect(props.id).toBeUndefined();
      expect(props.type).toBeUndefined();
      expect(props.position).toBeUndefined();
      expect((s.formSchema.required as string[] | undefined) ?? []).not.toContain('id');
    }
  });

  it('gives new nodes every stated default, and empty text for required strings', () => {
    expect(byType.say.formSchema.required).toEqual(['text']);
    expect(byType.say.defaults).toEqual({ text: '', interruptible: true });
    expect(byType.http.defaults).toEqual({ url: '', method: 'GET', headers: {}, timeout_s: 10, async: false });
    expect(byType.end.defaults).toEqual({ reason: 'completed' });
  });

  it('turns Optional fields into one plain input', () => {
    const into = (byType.listen.formSchema.properties as Record<string, JsonSchema>).into;
    expect(into.anyOf).toBeUndefined();
    expect(into.type).toBe('string');
    expect(into.default).toBeUndefined();
  });

  it('makes collect’s field map editable as a map of CollectField', () => {
    const fields = (byType.collect.formSchema.properties as Record<string, JsonSchema>).fields;
    expect(fields.patternProperties).toBeUndefined();
    expect(resolveRef(byType.collect.formSchema, fields.additionalProperties as JsonSchema)?.properties).toHaveProperty('required');
  });

  it('edits a free-form body as text', () => {
    const body = (byType.http.formSchema.properties as Record<string, JsonSchema>).body;
    expect(body.type).toBe('string');
  });

  it('carries $defs so that references inside a form resolve', () => {
    expect(Object.keys(byType.collect.formSchema.$defs as object)).toContain('CollectField');
  });
});

describe('schemas of other shapes', () => {
  it('reads a plain oneOf without a discriminator (the built-in copy)', () => {
    expect(nodeTypesFromSchema(FALLBACK_SCHEMA).map((s) => s.type)).toEqual([...NODE_TYPES]);
  });

  it('reads `enum: [x]` as the type tag and follows chained refs', () => {
    const s = {
      $defs: { A: { $ref: '#/$defs/B' }, B: { properties: { type: { enum: ['say'] }, text: { type: 'string' } } } },
      properties: { nodes: { items: { anyOf: [{ $ref: '#/$defs/A' }] } } },
    };
    expect(nodeTypesFromSchema(s).map((x) => x.type)).toEqual(['say']);
  });

  it('gives nothing for a schema without nodes', () => {
    expect(nodeTypesFromSchema({ properties: {} })).toEqual([]);
  });

  it('formFriendly keeps literal values and real unions as they are', () => {
    const s = { properties: { a: { anyOf: [{ type: 'string' }, { type: 'integer' }] }, b: { enum: [{ anyOf: 1 }] } } };
    expect(formFriendly(s)).toEqual(s);
  });
});
