// The page's settings rules must match the engine's: both check the same cases file
// (crates/engine/tests/fixtures/settings_cases.json; the Rust side is settings.rs).
import { describe, expect, it } from 'vitest';
import shared from '../../../crates/engine/tests/fixtures/settings_cases.json';
import type { TrainConfig } from '../ipc/types';
import { quickConfig } from '../test/fixtures';
import { validateConfig } from './trainConfig';

interface Case {
  patch: Partial<TrainConfig>;
  invalid: keyof TrainConfig | null;
}
const file = shared as unknown as { base: Partial<TrainConfig>; cases: Case[] };

describe('settings rules shared with the engine', () => {
  it.each(file.cases.map((c) => [JSON.stringify(c.patch), c] as const))('%s', (_name, c) => {
    const errors = validateConfig({ ...quickConfig(), ...file.base, ...c.patch } as TrainConfig);
    expect(Object.keys(errors)).toEqual(c.invalid ? [c.invalid] : []);
  });
});
