import { describe, expect, it } from 'vitest';
import type { TrainingMemory } from '../ipc/types';
import { formatBytes } from './format';
import { describeModel, loraByDefault, memoryLine, modelName, modelParams, scratchParams, toModelSpec } from './models';

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

});

describe('LoRA by default', () => {
  it('is on for downloaded models over 100M parameters only', () => {
    const smol = { kind: 'hub', id: 'HuggingFaceTB/SmolLM2-135M-Instruct' } as const;
    expect(loraByDefault(smol, modelParams(smol, 0, 0))).toBe(true);
    expect(loraByDefault({ kind: 'hub', id: 'distilgpt2' }, 82e6)).toBe(false);
    expect(loraByDefault({ kind: 'folder', path: '/m' }, 494e6)).toBe(true);
    expect(loraByDefault({ kind: 'folder', path: '/m' }, null)).toBe(false);
    expect(loraByDefault({ kind: 'scratch', size: 'base' }, 124e6)).toBe(false);
  });
});

describe('memoryLine', () => {
  const est = (total: number) => ({ weightsBytes: 1e9, optimizerBytes: 0, activationsBytes: total - 1e9, totalBytes: total });
  const mem = (total: number, saved: number | null, free: number | null): TrainingMemory => ({
    estimate: est(total),
    withRecompute: saved === null ? null : est(saved),
    machine: free === null ? null : { totalBytes: 16e9, availableBytes: free },
  });

  it('says whether the run fits this computer', () => {
    expect(memoryLine(mem(3e9, 2e9, 12e9), true, false, formatBytes)).toBe('needs ≈ 3.0 GB of memory to train with LoRA · fits this computer (12 GB free)');
    expect(memoryLine(mem(3e9, 2e9, null), false, false, formatBytes)).toBe('needs ≈ 3.0 GB of memory to train');
  });

  it('offers saving memory when that makes it fit, and other remedies when nothing does', () => {
    expect(memoryLine(mem(14e9, 5e9, 8e9), true, false, formatBytes)).toContain('fits with “Save memory” (≈ 5.0 GB');
    const none = memoryLine(mem(14e9, 10e9, 8e9), false, false, formatBytes);
    expect(none).toContain('more than the 8.0 GB this computer has free');
    expect(none).toContain('Turn on LoRA');
    expect(memoryLine(mem(14e9, 10e9, 8e9), true, true, formatBytes)).not.toContain('LoRA, or');
  });

  it('waits for the model when its shape is unknown', () => {
    expect(memoryLine({ estimate: null, withRecompute: null, machine: null }, false, false, formatBytes)).toContain('when training starts');
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
