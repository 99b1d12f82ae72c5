import { describe, expect, it } from 'vitest';
import { documentState, embeddingState, ingesting, splitFacts, type Fact } from './knowledge';

describe('documentState', () => {
  it('says what a document is doing, with its progress, chunks or reason', () => {
    expect(documentState({ status: 'queued', progress: 0, error: null, chunk_count: 0 })).toBe('queued');
    expect(documentState({ status: 'processing', progress: 0.404, error: null, chunk_count: 0 })).toBe('processing 40%');
    expect(documentState({ status: 'ready', progress: 1, error: null, chunk_count: 12 })).toBe('ready · 12 chunks');
    expect(documentState({ status: 'ready', progress: 1, error: null, chunk_count: 1 })).toBe('ready · 1 chunk');
    expect(documentState({ status: 'failed', progress: 0, error: 'file: not a PDF', chunk_count: 0 })).toBe('failed: file: not a PDF');
  });
});

describe('ingesting', () => {
  it('is true while a document is queued or processing, false once all are ready or failed', () => {
    expect(ingesting([{ status: 'ready' }, { status: 'processing' }])).toBe(true);
    expect(ingesting([{ status: 'queued' }])).toBe(true);
    expect(ingesting([{ status: 'ready' }, { status: 'failed' }])).toBe(false);
    expect(ingesting([])).toBe(false);
  });
});

describe('splitFacts', () => {
  const fact = (type: string, value: string, superseded_at: string | null, created_at = '2026-11-30T10:00:00Z'): Fact =>
    ({ type, value, created_at, superseded_at });

  it('keeps the current facts by type and the superseded ones newest first', () => {
    const { current, superseded } = splitFacts([
      fact('name', 'Sam', null), fact('name', 'Alice', '2026-11-30T11:00:00Z'),
      fact('city', 'Lisbon', '2026-11-30T09:00:00Z'), fact('city', 'Porto', null),
    ]);
    expect(current.map((f) => `${f.type}=${f.value}`)).toEqual(['city=Porto', 'name=Sam']);
    expect(superseded.map((f) => f.value)).toEqual(['Alice', 'Lisbon']);
  });
});

describe('embeddingState', () => {
  it('names the model, with the re-embedding progress while chunks still carry another', () => {
    expect(embeddingState({ embedding_kind: 'minilm', chunks: 10, chunks_current: 10 })).toBe('minilm');
    expect(embeddingState({ embedding_kind: 'minilm', chunks: 0, chunks_current: 0 })).toBe('minilm');
    expect(embeddingState({ embedding_kind: 'openai:text-embedding-3-small', chunks: 8, chunks_current: 3 }))
      .toBe('openai:text-embedding-3-small (re-embedding 37%)');
  });
});
