import { describe, expect, it } from 'vitest';
import serverSchema from './fixtures/flow-schema.json';
import { nodeTypesFromSchema, resolveRef, type JsonSchema } from './schema';

// The builder's forms for the memory and knowledge options, from the server's own schema (the fixture).
const schema = serverSchema as JsonSchema;
const byType = Object.fromEntries(nodeTypesFromSchema(schema).map((s) => [s.type, s]));
const propsOf = (s: JsonSchema) => (resolveRef(schema, s)?.properties ?? {}) as Record<string, JsonSchema>;

describe('builder forms for memory and knowledge', () => {
  it('offers a rag node with its knowledge bases, query, top_k and target variable', () => {
    expect(byType.rag).toBeDefined();
    const props = propsOf(byType.rag.formSchema);
    expect(Object.keys(props)).toEqual(expect.arrayContaining(['knowledge_bases', 'query', 'top_k', 'into']));
    expect(byType.rag.defaults).toMatchObject({ query: '{{ user_text }}', top_k: 4, into: 'context' });
  });

  it('offers an llm node memory options: episodic k, facts, token budget', () => {
    const memory = propsOf(byType.llm.formSchema).memory;
    expect(memory).toBeDefined();
    const options = propsOf(memory.anyOf ? (memory.anyOf as JsonSchema[])[0] : memory);
    expect(Object.keys(options).sort()).toEqual(['budget_tokens', 'episodic', 'facts']);
    expect(resolveRef(schema, options.facts)?.type).toBe('boolean');
  });
});
