import { describe, expect, it } from 'vitest';
import runStatusBinding from '../ipc/bindings/RunStatus.ts?raw';
import type { RunSummary } from '../ipc/types';
import { runSummary } from '../test/fixtures';
import { isInterrupted, isResumable, newestFirst, RUN_STATUS, statusLabel, statusTone } from './runs';

describe('run status words', () => {
  it('has words for exactly the statuses the engine exports', () => {
    // The generated binding is the Rust enum; its string literals are the statuses.
    const exported = [...runStatusBinding.matchAll(/"([a-z_]+)"/g)].map((m) => m[1]).sort();
    expect(exported).toEqual(['completed', 'failed', 'interrupted', 'running', 'stopped']);
    expect(Object.keys(RUN_STATUS).sort()).toEqual(exported);
  });

  it('maps each status to its label and tone', () => {
    const shown = (status: RunSummary['status']) => {
      const run = runSummary({ status });
      return [statusLabel(run), statusTone(run)];
    };
    expect(shown('running')).toEqual(['Training now', null]);
    expect(shown('completed')).toEqual(['Completed', null]);
    expect(shown('stopped')).toEqual(['Stopped', 'warn']);
    expect(shown('failed')).toEqual(['Failed', 'bad']);
    expect(shown('interrupted')).toEqual(['Stopped before the end — can be resumed', 'warn']);
  });

  it('resuming follows the engine, never the run being trained now', () => {
    const run = runSummary({ status: 'interrupted', resumable: true, checkpoints: [40] });
    expect(isInterrupted(run)).toBe(true);
    expect(isResumable(run, null)).toBe(true);
    expect(isResumable(run, run.path)).toBe(false);
    expect(isInterrupted(runSummary({ status: 'stopped' }))).toBe(false);
    expect(isResumable(runSummary({ status: 'completed', resumable: false }), null)).toBe(false);
  });
});

it('sorts runs newest first', () => {
  const a = runSummary({ name: 'a', updatedUnix: 1 });
  const b = runSummary({ name: 'b', updatedUnix: 2 });
  expect(newestFirst([a, b]).map((r) => r.name)).toEqual(['b', 'a']);
});
