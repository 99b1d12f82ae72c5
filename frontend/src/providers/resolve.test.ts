import { describe, expect, it } from 'vitest';
import { missingSecretsForFlow, readOrgProviders, requiredSecrets, resolveLayers } from './resolve';

describe('provider resolution', () => {
  const defaults = { stt: { kind: 'faster-whisper', model: '' }, llm: { kind: 'llamacpp', temperature: 0.2 } };
  const org = { llm: { kind: 'openai', model: 'gpt-4o-mini', api_key_secret: 'OPENAI_API_KEY' } };

  it.each([
    ['a flow layer of the same kind merges field by field', { llm: { model: 'gpt-4o' } }, { kind: 'openai', model: 'gpt-4o', api_key_secret: 'OPENAI_API_KEY' }],
    ['a flow layer of another kind replaces the config', { llm: { kind: 'llamacpp' } }, { kind: 'llamacpp' }],
    ['no flow layer keeps the organization’s', undefined, org.llm],
  ])('%s', (_name, flow, expected) => {
    expect(resolveLayers(defaults, org, flow).llm).toEqual(expected);
  });

  it('keeps lower layers for capabilities nobody above overrides, and ignores empty configs', () => {
    expect(resolveLayers(defaults, { stt: {}, tts: null }).stt).toEqual(defaults.stt);
  });

  it('names each required secret once', () => {
    expect(requiredSecrets({ a: { kind: 'x', api_key_secret: 'K' }, b: { kind: 'y', token_secret: 'K', other_secret: '' } })).toEqual(['K']);
  });

  it('lists what a flow lacks, given the secrets stored', () => {
    const flow = { tts: { kind: 'elevenlabs', api_key_secret: 'ELEVEN_KEY' } };
    expect(missingSecretsForFlow(flow, org, ['OPENAI_API_KEY'])).toEqual(['ELEVEN_KEY']);
    expect(missingSecretsForFlow(undefined, org, [])).toEqual(['OPENAI_API_KEY']);
    expect(missingSecretsForFlow({ llm: { kind: 'llamacpp' } }, org, [])).toEqual([]);
  });

  it('takes a kind’s default secret from the catalog when the config leaves it out', () => {
    const catalog = [{ kind: 'openai', capability: 'llm', config_schema: { properties: { api_key_secret: { default: 'OPENAI_API_KEY' }, model: { default: 'x' } } } }];
    expect(missingSecretsForFlow({ llm: { kind: 'openai' } }, defaults, [], catalog)).toEqual(['OPENAI_API_KEY']);
    expect(missingSecretsForFlow({ llm: { kind: 'openai', api_key_secret: 'MY_KEY' } }, defaults, [], catalog)).toEqual(['MY_KEY']);
    expect(missingSecretsForFlow({ llm: { kind: 'openai' } }, defaults, ['OPENAI_API_KEY'], catalog)).toEqual([]);
  });

  it('reads both shapes of GET /v1/org/providers', () => {
    const full = readOrgProviders({ providers: org, defaults, resolved: { llm: org.llm }, sources: { llm: 'organization' }, missing_secrets: ['OPENAI_API_KEY'] });
    expect(full.layer).toEqual(org);
    expect(full.sources.llm).toBe('organization');
    expect(full.missing).toEqual(['OPENAI_API_KEY']);
    const bare = readOrgProviders(org);
    expect(bare.layer).toEqual(org);
    expect(bare.resolved.llm).toEqual(org.llm);
    expect(bare.missing).toBeNull();
  });
});
