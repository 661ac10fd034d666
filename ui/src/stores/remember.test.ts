import { beforeEach, describe, expect, it } from 'vitest';
import { quickConfig } from '../test/fixtures';
import {
  applySettings,
  loadDownloads,
  loadFiles,
  loadTraining,
  parseTraining,
  rememberDownload,
  rememberFiles,
  rememberTraining,
  scopeRemembered,
  settingsOf,
} from './remember';

beforeEach(() => localStorage.clear());

describe('remembered files', () => {
  it('round-trips the paths', () => {
    rememberFiles(['/d/a.txt', '/d/b.md']);
    expect(loadFiles()).toEqual(['/d/a.txt', '/d/b.md']);
  });

  it('corrupt or wrongly shaped values fall back to no files', () => {
    expect(loadFiles()).toEqual([]);
    localStorage.setItem('tunesmith.dataFiles', '{not json');
    expect(loadFiles()).toEqual([]);
    localStorage.setItem('tunesmith.dataFiles', '{"a": 1}');
    expect(loadFiles()).toEqual([]);
    localStorage.setItem('tunesmith.dataFiles', JSON.stringify(['/d/a.txt', 3, '', null, '/d/a.txt', '/d/b.txt']));
    expect(loadFiles()).toEqual(['/d/a.txt', '/d/b.txt']);
  });
});

describe('remembered training settings', () => {
  it('round-trips the preset, the settings and whether the steps were the preset’s', () => {
    const c = quickConfig({ steps: 47, lr: 5e-4, dropout: 0.1, only_train_transformer_layers: true });
    c.prepare.scrub_pii = true;
    rememberTraining({ preset: 'balanced', settings: settingsOf(c), fittedSteps: 47 });
    const saved = loadTraining()!;
    expect(saved.preset).toBe('balanced');
    expect(saved.fittedSteps).toBe(47);
    const back = applySettings(quickConfig(), saved.settings);
    expect(back).toEqual(c);
  });

  it('drops unknown presets, unknown fields and wrongly typed values', () => {
    const saved = parseTraining({
      preset: 'forever',
      settings: { lr: 'fast', batch_size: 2.5, steps: null, warmup: 5, model: { source: '/etc' }, data: ['/x'], scrub_pii: 'yes' },
      fittedSteps: -3,
    })!;
    expect(saved).toEqual({ preset: null, settings: { steps: null, warmup: 5 }, fittedSteps: null });
    expect(parseTraining('quick')).toBeNull();
    expect(parseTraining(null)).toBeNull();
    localStorage.setItem('tunesmith.training', '[[[');
    expect(loadTraining()).toBeNull();
  });

  it('a value the engine would refuse falls back to the preset’s, field by field', () => {
    const base = quickConfig();
    const out = applySettings(base, { lr: 7, batch_size: 0, val_frac: 0.9, warmup: 20, steps: 100, epochs: 2 });
    expect(out.lr).toBe(base.lr);
    expect(out.batch_size).toBe(base.batch_size);
    expect(out.val_frac).toBe(base.val_frac);
    expect(out.warmup).toBe(20);
    // Steps and epochs both set: the preset's length choice comes back whole.
    expect([out.steps, out.epochs]).toEqual([base.steps, base.epochs]);
  });
});

describe('remembered downloads', () => {
  it('keeps each downloaded hub model and its folder', () => {
    rememberDownload('gpt2', '/cache/gpt2');
    rememberDownload('distilgpt2', '/cache/distilgpt2');
    expect(loadDownloads()).toEqual({ gpt2: '/cache/gpt2', distilgpt2: '/cache/distilgpt2' });
  });

  it('ignores unknown ids and corrupt values', () => {
    localStorage.setItem('tunesmith.downloadedModels', JSON.stringify({ gpt2: '/c/gpt2', 'evil/model': '/x', distilgpt2: 5 }));
    expect(loadDownloads()).toEqual({ gpt2: '/c/gpt2' });
    localStorage.setItem('tunesmith.downloadedModels', 'nope');
    expect(loadDownloads()).toEqual({});
    localStorage.setItem('tunesmith.downloadedModels', '["gpt2"]');
    expect(loadDownloads()).toEqual({});
  });
});

describe('scope', () => {
  it('each data folder remembers its own files', () => {
    scopeRemembered('/home/ana/tunesmith');
    rememberFiles(['/d/a.txt']);
    scopeRemembered('/tmp/test-home');
    expect(loadFiles()).toEqual([]);
    rememberFiles(['/d/b.txt']);
    scopeRemembered('/home/ana/tunesmith');
    expect(loadFiles()).toEqual(['/d/a.txt']);
    expect(localStorage.getItem('tunesmith.dataFiles@/tmp/test-home')).toBe('["/d/b.txt"]');
  });
});
