import { describe, expect, it } from 'vitest';
import { missingSecretsForFlow, profileFor, readOrgProviders, requiredSecrets, type ProfileChoice } from './resolve';

const profiles: ProfileChoice[] = [
  { name: 'main', capability: 'llm', kind: 'openai', default: true, allowed_models: [], max_tokens_cap: null, required_secrets: ['OPENAI_API_KEY'] },
  { name: 'local', capability: 'llm', kind: 'llamacpp', default: false, allowed_models: [], max_tokens_cap: null, required_secrets: [] },
  { name: 'eleven', capability: 'tts', kind: 'elevenlabs', default: false, allowed_models: [], max_tokens_cap: null, required_secrets: ['ELEVEN_KEY'] },
];

describe('provider profiles', () => {
  it('a flow lands on the profile it names, else the organization default', () => {
    expect(profileFor('llm', { profile: 'local' }, profiles)?.name).toBe('local');
    expect(profileFor('llm', { temperature: 0.2 }, profiles)?.name).toBe('main');
    expect(profileFor('llm', undefined, profiles)?.name).toBe('main');
    expect(profileFor('tts', undefined, profiles)).toBeUndefined();
  });

  it('names each required secret once', () => {
    expect(requiredSecrets({ a: { kind: 'x', api_key_secret: 'K' }, b: { kind: 'y', token_secret: 'K', other_secret: '' } })).toEqual(['K']);
  });

  it('takes a kind’s default secret from the catalog when the config leaves it out', () => {
    const catalog = [{ kind: 'openai', capability: 'llm', config_schema: { properties: { api_key_secret: { default: 'OPENAI_API_KEY' } } } }];
    expect(requiredSecrets({ llm: { kind: 'openai' } }, catalog)).toEqual(['OPENAI_API_KEY']);
    expect(requiredSecrets({ llm: { kind: 'openai', api_key_secret: 'MY_KEY' } }, catalog)).toEqual(['MY_KEY']);
  });

  it('lists what a flow lacks, given the secrets stored', () => {
    expect(missingSecretsForFlow({ tts: { profile: 'eleven' } }, profiles, ['OPENAI_API_KEY'])).toEqual(['ELEVEN_KEY']);
    expect(missingSecretsForFlow(undefined, profiles, [])).toEqual(['OPENAI_API_KEY']);
    expect(missingSecretsForFlow({ llm: { profile: 'local' } }, profiles, [])).toEqual([]);
  });

  it('reads GET /v1/org/providers', () => {
    const view = readOrgProviders({ profiles: [{ name: 'main', capability: 'llm', config: { kind: 'openai' }, allowed_models: [], max_tokens_cap: null, internal: false, default: true }], defaults: {}, resolved: { llm: { kind: 'openai' } }, sources: { llm: 'organization' }, missing_secrets: ['OPENAI_API_KEY'] });
    expect(view.profiles[0].name).toBe('main');
    expect(view.sources.llm).toBe('organization');
    expect(view.missing).toEqual(['OPENAI_API_KEY']);
    expect(readOrgProviders({}).missing).toBeNull();
  });
});
