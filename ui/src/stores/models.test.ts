import { describe, expect, it } from 'vitest';
import { describeModel, modelName, modelParams, scratchParams, toModelSpec, trainingMemoryBytes } from './models';

describe('model sizes', () => {
  it('tiny is ≈3M in its blocks plus embeddings', () => {
    const blocks = 12 * 4 * 256 * 256; // 3.1M
    expect(scratchParams('tiny', 4096, 128)).toBe(blocks + 4096 * 256 + 128 * 256);
  });

  it('small is ≈11M plus embeddings; base matches GPT-2’s 124M', () => {
    expect(scratchParams('small', 0, 0)).toBe(12 * 6 * 384 * 384);
    expect(scratchParams('base', 50257, 1024) / 1e6).toBeCloseTo(124.4, 0);
  });

  it('hub models have known sizes; folders are unknown until loaded', () => {
    expect(modelParams({ kind: 'hub', id: 'gpt2-medium' }, 0, 0)).toBe(355e6);
    expect(modelParams({ kind: 'folder', path: '/m' }, 0, 0)).toBeNull();
  });

  it('training memory is 16 bytes per parameter', () => {
    expect(trainingMemoryBytes(124e6)).toBe(1.984e9);
  });
});

describe('toModelSpec', () => {
  it('maps each choice to the engine’s ModelSpec', () => {
    expect(toModelSpec({ kind: 'scratch', size: 'tiny' })).toEqual({ scratch: 'tiny' });
    expect(toModelSpec({ kind: 'hub', id: 'distilgpt2' })).toEqual({ source: 'distilgpt2' });
    expect(toModelSpec({ kind: 'folder', path: '/m/gpt2' })).toEqual({ source: '/m/gpt2' });
    expect(toModelSpec({ kind: 'run', path: '/runs/a', name: 'a' })).toEqual({ source: '/runs/a' });
    expect(describeModel({ kind: 'run', path: '/runs/a', name: 'a' })).toContain('a');
  });
});

describe('modelName', () => {
  it('names the engine’s model sources in plain words', () => {
    expect(modelName('scratch:tiny')).toBe('New tiny model (trained from scratch)');
    expect(modelName('scratch:small')).toBe('New small model (trained from scratch)');
    expect(modelName('gpt2')).toBe('GPT-2 (124M)');
    expect(modelName('distilgpt2')).toBe('DistilGPT-2 (82M)');
    expect(modelName('gpt2-medium')).toBe('GPT-2 Medium (355M)');
  });

  it('names a local folder by its folder name, on any platform', () => {
    expect(modelName('/home/ana/models/my-gpt2')).toBe('my-gpt2');
    expect(modelName('/home/ana/models/my-gpt2/')).toBe('my-gpt2');
    expect(modelName('C:\\Users\\ana\\models\\poems')).toBe('poems');
    expect(modelName('~/models/poems')).toBe('poems');
  });

  it('names a run’s checkpoint by the run and step, and another hub model by its id', () => {
    expect(modelName('/h/runs/notes-0312/checkpoints/step-200')).toBe('Run “notes-0312” (step 200)');
    expect(modelName('openai-community/gpt2-large')).toBe('Hugging Face model “openai-community/gpt2-large”');
  });

  it('the Train page’s summary uses the same names', () => {
    expect(describeModel({ kind: 'scratch', size: 'tiny' })).toBe(modelName('scratch:tiny'));
    expect(describeModel({ kind: 'hub', id: 'gpt2' })).toBe('GPT-2 (124M)');
  });
});
