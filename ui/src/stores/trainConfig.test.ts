import { describe, expect, it } from 'vitest';
import type { TrainConfig } from '../ipc/types';
import { quickConfig } from '../test/fixtures';
import { applyPreset, DEFAULT_LORA, defaultRunName, FIELDS, fitSteps, normalize, presetTitle, suggestedSteps, validateConfig, validateRunName } from './trainConfig';

const ok = (over: Partial<TrainConfig> = {}) => quickConfig({ data: ['/d/a.txt'], ...over });

describe('validateConfig', () => {
  it('accepts the engine presets once data is added', () => {
    expect(validateConfig(ok())).toEqual({});
  });

  // One row per engine rule (crates/engine src/settings.rs validate), plus bad input.
  it.each<[string, Partial<TrainConfig>, keyof TrainConfig]>([
    ['lr = 0', { lr: 0 }, 'lr'],
    ['lr negative', { lr: -0.1 }, 'lr'],
    ['lr = 1', { lr: 1 }, 'lr'],
    ['lr empty', { lr: undefined as unknown as number }, 'lr'],
    ['batch_size = 0', { batch_size: 0 }, 'batch_size'],
    ['batch_size fractional', { batch_size: 2.5 }, 'batch_size'],
    ['block_size = 1', { block_size: 1 }, 'block_size'],
    ['grad_accum = 0', { grad_accum: 0 }, 'grad_accum'],
    ['val_frac negative', { val_frac: -0.01 }, 'val_frac'],
    ['val_frac above 0.5', { val_frac: 0.51 }, 'val_frac'],
    ['dropout = 1', { dropout: 1 }, 'dropout'],
    ['dropout negative', { dropout: -0.1 }, 'dropout'],
    ['weight_decay negative', { weight_decay: -1 }, 'weight_decay'],
    ['clip negative', { clip: -0.5 }, 'clip'],
    ['steps = 0', { steps: 0 }, 'steps'],
    ['epochs = 0', { steps: null, epochs: 0 }, 'epochs'],
    ['steps and epochs both set', { steps: 100, epochs: 2 }, 'epochs'],
    ['beta1 = 1', { beta1: 1 }, 'beta1'],
    ['beta2 negative', { beta2: -0.1 }, 'beta2'],
    ['min_lr_ratio above 1', { min_lr_ratio: 1.5 }, 'min_lr_ratio'],
    ['log_every = 0', { log_every: 0 }, 'log_every'],
    ['vocab_size 256 from scratch', { vocab_size: 256 }, 'vocab_size'],
    ['no data', { data: [] }, 'data'],
    ['early_stop_patience = 0', { early_stop_patience: 0 }, 'early_stop_patience'],
    ['early stopping without checks', { eval_every: 0 }, 'early_stop_patience'],
    ['early stopping without held-back text', { val_frac: 0 }, 'early_stop_patience'],
  ])('%s is flagged on its field', (_name, over, field) => {
    const errors = validateConfig(ok(over));
    expect(Object.keys(errors)).toEqual([field]);
    expect(errors[field]).toMatch(/\w/);
  });

  it('allows the edges of each range', () => {
    expect(validateConfig(ok({ val_frac: 0, early_stop_patience: null, dropout: 0, clip: 0, weight_decay: 0, block_size: 2, vocab_size: 257 }))).toEqual({});
    expect(validateConfig(ok({ early_stop_patience: 1 }))).toEqual({});
    expect(validateConfig(ok({ val_frac: 0.5, dropout: 0.9, lr: 0.999 }))).toEqual({});
    expect(validateConfig(ok({ steps: null, epochs: 0.5 }))).toEqual({});
    expect(validateConfig(ok({ steps: null, epochs: null }))).toEqual({});
  });

  it('ignores vocab_size for a pretrained model (its tokenizer is fixed)', () => {
    expect(validateConfig(ok({ model: { source: 'gpt2' }, vocab_size: 10 }))).toEqual({});
  });

  it('explains how to fix the data problem', () => {
    expect(validateConfig(ok({ data: [] })).data).toContain('Data page');
  });
});

describe('normalize', () => {
  it('turns emptied optional inputs into null and leaves required ones for validation', () => {
    const c = normalize(ok({ steps: undefined as unknown as null, dropout: NaN, lr: undefined as unknown as number }));
    expect(c.steps).toBeNull();
    expect(c.dropout).toBeNull();
    expect(c.lr).toBeUndefined();
    expect(validateConfig(c).lr).toBeDefined();
  });
});

describe('presets', () => {
  it('keep the model, data and held-back fraction the user chose elsewhere', () => {
    const current = ok({ model: { source: 'gpt2' }, val_frac: 0.2, steps: 200 });
    const thorough = quickConfig({ steps: 4000, lr: 2e-4 });
    const merged = applyPreset(thorough, current);
    expect(merged.steps).toBe(4000);
    expect(merged.lr).toBe(2e-4);
    expect(merged.model).toEqual({ source: 'gpt2' });
    expect(merged.data).toEqual(['/d/a.txt']);
    expect(merged.val_frac).toBe(0.2);
  });

  it('keeps the Data page’s preparation choices, such as replacing personal data', () => {
    const current = quickConfig();
    current.prepare.scrub_pii = true;
    expect(applyPreset(quickConfig({ steps: 1000 }), current).prepare.scrub_pii).toBe(true);
  });

  it('LoRA settings are checked as the engine checks them', () => {
    const model = { source: 'HuggingFaceTB/SmolLM2-135M-Instruct' };
    const lora = (over: Partial<typeof DEFAULT_LORA>) => ({ ...DEFAULT_LORA, ...over });
    expect(validateConfig(quickConfig({ model, data: ['a.txt'], lora: lora({}) })).lora).toBeUndefined();
    expect(validateConfig(quickConfig({ model, data: ['a.txt'], lora: lora({ rank: 0 }) })).lora).toMatch(/rank must be a whole number/);
    expect(validateConfig(quickConfig({ model: { scratch: 'tiny' }, data: ['a.txt'], lora: lora({}) })).lora).toMatch(/downloaded model/);
    // A preset keeps the LoRA choice.
    expect(applyPreset(quickConfig(), quickConfig({ lora: lora({ rank: 4 }) })).lora?.rank).toBe(4);
  });

  it('every numeric field has a plain-language explanation', () => {
    const keys = Object.keys(quickConfig()).filter((k) => !['model', 'data', 'dataset', 'prepare'].includes(k));
    expect(FIELDS.map((f) => f.key).sort()).toEqual(keys.sort());
    for (const f of FIELDS) expect(f.help.length).toBeGreaterThan(20);
  });
});

describe('defaultRunName', () => {
  it('uses the first file name and the time', () => {
    expect(defaultRunName(['/home/u/My Notes.v2.md'], new Date(2025, 2, 7, 9, 5))).toBe('My-Notes-v2-0307-0905');
    expect(defaultRunName([], new Date(2025, 11, 31, 23, 59))).toBe('run-1231-2359');
  });
});

describe('validateRunName', () => {
  it('accepts plain names and explains the rest', () => {
    expect(validateRunName('refunds v1')).toBeNull();
    expect(validateRunName('  ')).toMatch(/name/);
    expect(validateRunName('a/b')).toMatch(/cannot contain/);
    expect(validateRunName('.hidden')).toMatch(/dot/);
  });
});

describe('presets follow the data', () => {
  const small = { quick_steps: 47, balanced_steps: 141, thorough_steps: 235 };

  it('a preset is capped at the suggestion for it, never raised', () => {
    expect(fitSteps(200, suggestedSteps(small, 'quick'))).toEqual({ steps: 47, capped: true });
    expect(fitSteps(1000, suggestedSteps(small, 'balanced'))).toEqual({ steps: 141, capped: true });
    expect(fitSteps(200, 300)).toEqual({ steps: 200, capped: false });
    expect(fitSteps(200, 200)).toEqual({ steps: 200, capped: false });
    expect(fitSteps(200, null)).toEqual({ steps: 200, capped: false });
    expect(fitSteps(null, 47)).toEqual({ steps: null, capped: false });
  });

  it('says the length in words', () => {
    expect(presetTitle('Quick', { steps: 141, capped: true })).toBe('Quick: 141 steps (your data is small)');
    expect(presetTitle('Balanced', { steps: 1000, capped: false })).toBe('Balanced: 1,000 steps');
    expect(presetTitle('Quick', null)).toBe('Quick');
  });
});
