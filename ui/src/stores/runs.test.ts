import { describe, expect, it } from 'vitest';
import { runSummary } from '../test/fixtures';
import { isInterrupted, isResumable, newestFirst, statusLabel } from './runs';

describe('isResumable', () => {
  it('an interrupted "running" run is resumable; the current job is not', () => {
    const run = runSummary({ status: 'running', checkpoints: [100] });
    expect(isResumable(run, null)).toBe(true);
    expect(isResumable(run, '/elsewhere')).toBe(true);
    expect(isResumable(run, run.path)).toBe(false);
    expect(statusLabel(run, null)).toBe('Stopped before the end — can be resumed');
    expect(statusLabel(run, run.path)).toBe('Training now');
  });

  it('a run the backend marks `interrupted` reads the same and is resumable', () => {
    const run = runSummary({ status: 'interrupted', checkpoints: [40] });
    expect(isInterrupted(run, null)).toBe(true);
    expect(isResumable(run, null)).toBe(true);
    expect(statusLabel(run, null)).toBe('Stopped before the end — can be resumed');
    // Finished or deliberately stopped runs are not interrupted.
    expect(isInterrupted(runSummary({ status: 'stopped' }), null)).toBe(false);
    expect(statusLabel(runSummary({ status: 'stopped' }), null)).toBe('Stopped');
  });

  it('stopped or failed runs need a checkpoint', () => {
    expect(isResumable(runSummary({ status: 'stopped', checkpoints: [50] }), null)).toBe(true);
    expect(isResumable(runSummary({ status: 'stopped', checkpoints: [] }), null)).toBe(false);
    expect(isResumable(runSummary({ status: 'failed', checkpoints: [50] }), null)).toBe(true);
    expect(isResumable(runSummary({ status: 'failed', checkpoints: [] }), null)).toBe(false);
  });

  it('completed runs follow the backend’s verdict', () => {
    expect(isResumable(runSummary({ status: 'completed', resumable: false }), null)).toBe(false);
    expect(isResumable(runSummary({ status: 'completed', resumable: true }), null)).toBe(true);
  });
});

it('sorts runs newest first', () => {
  const a = runSummary({ name: 'a', updatedUnix: 1 });
  const b = runSummary({ name: 'b', updatedUnix: 2 });
  expect(newestFirst([a, b]).map((r) => r.name)).toEqual(['b', 'a']);
});
