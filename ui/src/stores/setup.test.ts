import { describe, expect, it } from 'vitest';
import { fakeBackend } from '../test/backend';
import { quickConfig } from '../test/fixtures';
import { loadTraining, rememberTraining } from './remember';
import { Setup } from './setup.svelte';

// The engine's presets (crates/engine src/settings.rs): 200, 1000 and 4000 steps.
const PRESET_STEPS = { quick: 200, balanced: 1000, thorough: 4000 } as const;
const small = { quick_steps: 47, balanced_steps: 141, thorough_steps: 235 };

function backend() {
  return fakeBackend({
    default_train_config: ({ preset }) => quickConfig({ steps: PRESET_STEPS[preset as keyof typeof PRESET_STEPS] }),
  });
}

describe('Setup: presets follow the data', () => {
  it('loads every preset so each can say its length, and applies the chosen one', async () => {
    backend();
    const s = new Setup();
    await s.loadPresets('quick');
    expect(s.preset).toBe('quick');
    expect(s.config?.steps).toBe(200);
    expect(s.presetLength('balanced')).toEqual({ steps: 1000, capped: false });
    expect(s.presetLength('thorough')).toEqual({ steps: 4000, capped: false });
  });

  it('small data caps the chosen preset, and picking another preset is capped too', async () => {
    backend();
    const s = new Setup();
    await s.loadPresets('quick');
    s.fitToData(small);
    expect(s.config?.steps).toBe(47);
    expect(s.presetLength('quick')).toEqual({ steps: 47, capped: true });
    await s.loadPreset('balanced');
    expect(s.config?.steps).toBe(141);
    // With no files the preset's own length returns.
    s.fitToData(null);
    expect(s.config?.steps).toBe(1000);
  });

  it('steps the user typed are theirs: new data does not overwrite them', async () => {
    backend();
    const s = new Setup();
    await s.loadPresets('quick');
    s.config!.steps = 120;
    s.fitToData(small);
    expect(s.config?.steps).toBe(120);
    // The picker still tells what Quick would train.
    expect(s.presetLength('quick')?.steps).toBe(47);
  });

  it('a suggestion chosen from the health check sets that preset with exactly those steps', async () => {
    backend();
    const s = new Setup();
    await s.loadPresets('quick');
    s.fitToData({ quick_steps: 300, balanced_steps: 2400, thorough_steps: 4800 });
    expect(s.config?.steps).toBe(200); // capped, never raised
    await s.useSuggestion('balanced', 2400);
    expect(s.preset).toBe('balanced');
    expect(s.config?.steps).toBe(2400);
    expect(s.config?.epochs).toBeNull();
    // A later report does not undo the user's choice.
    s.fitToData(small);
    expect(s.config?.steps).toBe(2400);
  });

  it('an edit to the prepared config never leaks into the cached preset', async () => {
    backend();
    const s = new Setup();
    await s.loadPresets('quick');
    s.config!.prepare.scrub_pii = true;
    s.config!.lr = 0.01;
    await s.loadPreset('quick');
    expect(s.config?.lr).toBe(1e-3);
  });
});

describe('Setup: remembered between launches', () => {
  it('a first launch gets Quick with its defaults, and nothing is saved before that', async () => {
    backend();
    const s = new Setup();
    s.config = quickConfig({ lr: 0.5 });
    s.remember(); // before restore: must not overwrite what the last session saved
    expect(loadTraining()).toBeNull();
    await s.restore();
    expect(s.preset).toBe('quick');
    expect(s.config?.steps).toBe(200);
    s.remember();
    expect(loadTraining()?.preset).toBe('quick');
  });

  it('brings back the preset and settings; steps the preset fitted still follow new data', async () => {
    const b = backend();
    rememberTraining({ preset: 'balanced', settings: { steps: 141, lr: 5e-4, seed: 7, scrub_pii: true }, fittedSteps: 141 });
    const s = new Setup();
    await s.restore();
    expect(b.calls.find((c) => c.cmd === 'default_train_config')?.args).toEqual({ preset: 'balanced' });
    expect(s.preset).toBe('balanced');
    expect([s.config?.steps, s.config?.lr, s.config?.seed, s.config?.prepare.scrub_pii]).toEqual([141, 5e-4, 7, true]);
    s.fitToData({ quick_steps: 30, balanced_steps: 90, thorough_steps: 150 });
    expect(s.config?.steps).toBe(90);
  });

  it('steps the user typed last time stay theirs after a launch', async () => {
    backend();
    rememberTraining({ preset: 'quick', settings: { steps: 120 }, fittedSteps: null });
    const s = new Setup();
    await s.restore();
    s.fitToData({ quick_steps: 30, balanced_steps: 90, thorough_steps: 150 });
    expect(s.config?.steps).toBe(120);
  });

  it('corrupt saved settings fall back to the preset’s', async () => {
    backend();
    localStorage.setItem('tunesmith.training', JSON.stringify({ preset: 'quick', settings: { lr: -1, batch_size: 'big', steps: 0 }, fittedSteps: 47 }));
    const s = new Setup();
    await s.restore();
    expect([s.config?.lr, s.config?.batch_size, s.config?.steps]).toEqual([1e-3, 4, 200]);
    // The preset's own steps (back after the refused 0) still follow the data.
    s.fitToData({ quick_steps: 30, balanced_steps: 90, thorough_steps: 150 });
    expect(s.config?.steps).toBe(30);
  });
});
