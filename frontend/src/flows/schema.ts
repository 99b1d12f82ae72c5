/** Node types and their form schemas, read from the flow document's JSON Schema (`GET /v1/flows/schema`). */

export type JsonSchema = Record<string, unknown>;

export type NodeTypeSpec = {
  type: string;
  title: string;
  description: string;
  /** Schema of the node's own fields (without id, type, position), with the root's $defs attached. */
  formSchema: JsonSchema;
  /** Field values for a new node of this type: required fields' defaults. */
  defaults: Record<string, unknown>;
};

export const NODE_TYPES = ['start', 'end', 'say', 'listen', 'llm', 'collect', 'http', 'subflow', 'transfer'] as const;

const HIDDEN_FIELDS = ['id', 'type', 'position'];

/** Resolve a local `$ref` (`#/$defs/X` or `#/definitions/X`) against the root schema. */
export function resolveRef(root: JsonSchema, schema: JsonSchema | undefined): JsonSchema | undefined {
  let s = schema;
  for (let i = 0; s && typeof s.$ref === 'string' && i < 20; i++) {
    const path = (s.$ref as string).replace(/^#\//, '').split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    let cur: unknown = root;
    for (const p of path) cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[p] : undefined;
    const { $ref: _ignored, ...rest } = s;
    s = cur && typeof cur === 'object' ? { ...(cur as JsonSchema), ...rest } : undefined;
  }
  return s;
}

function typeConst(root: JsonSchema, variant: JsonSchema): string | null {
  const props = (variant.properties ?? {}) as Record<string, JsonSchema>;
  const t = resolveRef(root, props.type);
  if (!t) return null;
  if (typeof t.const === 'string') return t.const;
  if (Array.isArray(t.enum) && t.enum.length === 1) return String(t.enum[0]);
  if (typeof t.default === 'string') return t.default;
  return null;
}

/** Every node type the schema allows, with the schema for its side-panel form. */
export function nodeTypesFromSchema(root: JsonSchema): NodeTypeSpec[] {
  const props = (root.properties ?? {}) as Record<string, JsonSchema>;
  const nodes = resolveRef(root, props.nodes);
  const items = nodes ? resolveRef(root, nodes.items as JsonSchema) : undefined;
  if (!items) return [];
  const variants: JsonSchema[] = [];
  const union = (items.oneOf ?? items.anyOf) as JsonSchema[] | undefined;
  const mapping = (items.discriminator as { mapping?: Record<string, string> } | undefined)?.mapping;
  if (mapping) {
    for (const ref of Object.values(mapping)) { const v = resolveRef(root, { $ref: ref }); if (v) variants.push(v); }
  } else if (union) {
    for (const u of union) { const v = resolveRef(root, u); if (v) variants.push(v); }
  } else variants.push(items);
  const defs = { ...((root.$defs ?? {}) as JsonSchema) };
  const definitions = root.definitions as JsonSchema | undefined;
  const specs: NodeTypeSpec[] = [];
  const seen = new Set<string>();
  for (const v of variants) {
    const type = typeConst(root, v);
    if (!type || seen.has(type)) continue;
    seen.add(type);
    specs.push(specFor(type, v, defs, definitions));
  }
  // The palette's order: the flow's life (start … transfer), then any type the server adds.
  const rank = (t: string) => { const i = (NODE_TYPES as readonly string[]).indexOf(t); return i < 0 ? NODE_TYPES.length : i; };
  return specs.sort((a, b) => rank(a.type) - rank(b.type) || a.type.localeCompare(b.type));
}

function specFor(type: string, variant: JsonSchema, defs: JsonSchema, definitions?: JsonSchema): NodeTypeSpec {
  const properties = { ...((variant.properties ?? {}) as Record<string, JsonSchema>) };
  for (const f of HIDDEN_FIELDS) delete properties[f];
  const required = ((variant.required ?? []) as string[]).filter((r) => !HIDDEN_FIELDS.includes(r));
  const formSchema: JsonSchema = formFriendly({
    type: 'object',
    properties,
    ...(required.length ? { required } : {}),
    ...(variant.additionalProperties === false ? { additionalProperties: false } : {}),
    $defs: defs,
    ...(definitions ? { definitions } : {}),
  }) as JsonSchema;
  // Every default the schema states, so that a form filling in its defaults changes nothing.
  const defaults: Record<string, unknown> = {};
  for (const [k, p] of Object.entries(properties)) {
    if (p && 'default' in p && p.default !== null && p.default !== undefined) defaults[k] = p.default;
  }
  for (const r of required) {
    const p = properties[r];
    if (!(r in defaults) && p?.type === 'string') defaults[r] = '';
  }
  return {
    type,
    title: typeof variant.title === 'string' ? humanTitle(type, variant.title) : humanTitle(type),
    description: typeof variant.description === 'string' ? variant.description : FALLBACK_DESCRIPTIONS[type] ?? '',
    formSchema,
    defaults,
  };
}

function humanTitle(type: string, _title?: string): string {
  return type === 'llm' ? 'LLM' : type === 'http' ? 'HTTP' : type.charAt(0).toUpperCase() + type.slice(1);
}

const FALLBACK_DESCRIPTIONS: Record<string, string> = {
  start: 'Where the flow begins (exactly one).',
  end: 'Ends the session; hangs up a call.',
  say: 'Speaks on voice, sends on chat.',
  listen: 'Waits for the next user turn.',
  llm: 'Replies with the language model.',
  collect: 'Extracts typed values from what the user says.',
  http: 'Calls an external API.',
  subflow: 'Runs another flow as a child session.',
  transfer: 'Transfers the call.',
};

/** Used when the server's schema cannot be loaded: the node types of the flow-engine issue, fields as it names them. */
export const FALLBACK_SCHEMA: JsonSchema = {
  $defs: {
    Start: { type: 'object', properties: { id: { type: 'string' }, type: { const: 'start' } }, required: ['id', 'type'] },
    End: { type: 'object', properties: { id: { type: 'string' }, type: { const: 'end' }, reason: { type: 'string', title: 'Reason' } }, required: ['id', 'type'] },
    Say: { type: 'object', properties: { id: { type: 'string' }, type: { const: 'say' }, text: { type: 'string', title: 'Text', description: 'Template: {{ variable }}' } }, required: ['id', 'type', 'text'] },
    Listen: { type: 'object', properties: { id: { type: 'string' }, type: { const: 'listen' }, into: { type: 'string', title: 'Store the turn into variable' } }, required: ['id', 'type'] },
    Llm: { type: 'object', properties: { id: { type: 'string' }, type: { const: 'llm' }, instructions: { type: 'string', title: 'Instructions' }, history: { type: 'boolean', default: true }, into: { type: 'string' }, say: { type: 'boolean', default: true } }, required: ['id', 'type', 'instructions'] },
    Collect: { type: 'object', properties: { id: { type: 'string' }, type: { const: 'collect' }, prompt: { type: 'string' }, max_attempts: { type: 'integer', default: 3 }, fields: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, type: { type: 'string', enum: ['string', 'integer', 'number', 'boolean', 'date', 'email', 'phone'] }, description: { type: 'string' }, required: { type: 'boolean', default: true } }, required: ['name', 'type'] } } }, required: ['id', 'type', 'fields'] },
    Http: { type: 'object', properties: { id: { type: 'string' }, type: { const: 'http' }, method: { type: 'string', enum: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'], default: 'GET' }, url: { type: 'string' }, headers: { type: 'object', additionalProperties: { type: 'string' } }, body: {}, into: { type: 'string' }, timeout_s: { type: 'number', default: 10 }, async: { type: 'boolean', default: false } }, required: ['id', 'type', 'url'] },
    Subflow: { type: 'object', properties: { id: { type: 'string' }, type: { const: 'subflow' }, flow_id: { type: 'string' }, inputs: { type: 'object', additionalProperties: { type: 'string' } }, into: { type: 'string' } }, required: ['id', 'type', 'flow_id'] },
    Transfer: { type: 'object', properties: { id: { type: 'string' }, type: { const: 'transfer' }, to: { type: 'string' }, mode: { type: 'string', enum: ['cold', 'warm'], default: 'cold' } }, required: ['id', 'type', 'to'] },
  },
  type: 'object',
  properties: {
    nodes: {
      type: 'array',
      items: { oneOf: ['Start', 'End', 'Say', 'Listen', 'Llm', 'Collect', 'Http', 'Subflow', 'Transfer'].map((n) => ({ $ref: `#/$defs/${n}` })) },
    },
  },
};

/**
 * Make pydantic's schema friendlier to a form, recursively ($defs included):
 * - `anyOf: [X, {type: null}]` (an Optional field) becomes X, so the form shows one input, not a type chooser;
 * - an object whose keys follow one `patternProperties` pattern becomes a map (`additionalProperties`), which forms can edit;
 * - a property that accepts anything (`{}`) is edited as text.
 */
export function formFriendly(schema: unknown, inProperties = false): unknown {
  if (Array.isArray(schema)) return schema.map((s) => formFriendly(s));
  if (!schema || typeof schema !== 'object') return schema;
  const s = schema as JsonSchema;
  const out: JsonSchema = {};
  for (const [k, v] of Object.entries(s)) {
    if (inProperties) {
      const prop = formFriendly(v) as JsonSchema;
      out[k] = prop && typeof prop === 'object' && isAnything(prop) ? { ...prop, type: 'string' } : prop;
    } else if (k === 'default' || k === 'const' || k === 'enum' || k === 'examples') out[k] = v;
    else out[k] = formFriendly(v, k === 'properties' || k === '$defs' || k === 'definitions' || k === 'patternProperties');
  }
  if (inProperties) return out;
  const pp = out.patternProperties as JsonSchema | undefined;
  if (pp && Object.keys(pp).length === 1 && out.additionalProperties === undefined) {
    out.additionalProperties = Object.values(pp)[0];
    delete out.patternProperties;
  }
  for (const key of ['anyOf', 'oneOf'] as const) {
    const branches = out[key];
    if (!Array.isArray(branches)) continue;
    const nonNull = branches.filter((b) => !(b && typeof b === 'object' && (b as JsonSchema).type === 'null'));
    if (nonNull.length === 1 && nonNull.length < branches.length) {
      delete out[key];
      const merged: JsonSchema = { ...(nonNull[0] as JsonSchema), ...out };
      if (merged.default === null) delete merged.default;
      return merged;
    }
  }
  return out;
}

function isAnything(s: JsonSchema): boolean {
  return !['type', '$ref', 'anyOf', 'oneOf', 'allOf', 'enum', 'const', 'properties', 'items'].some((k) => k in s);
}
