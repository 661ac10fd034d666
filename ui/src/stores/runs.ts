// Runs as the Runs page presents them.
import type { RunSummary } from '../ipc/types';

/**
 * Whether "Continue training" makes sense. A run marked `running` that is not the current job
 * was interrupted (the app closed or crashed), so its last checkpoint can be resumed.
 */
export function isResumable(run: RunSummary, activeRunPath: string | null): boolean {
  if (activeRunPath !== null && run.path === activeRunPath) return false;
  const hasCheckpoint = run.checkpoints.length > 0;
  if (run.status === 'running') return true;
  if (run.status === 'stopped' || run.status === 'failed') return hasCheckpoint;
  return run.resumable;
}

/** The run's status in words, accounting for interrupted runs. */
export function statusLabel(run: RunSummary, activeRunPath: string | null): string {
  if (run.status === 'running') return run.path === activeRunPath ? 'Training now' : 'Interrupted';
  return { completed: 'Completed', stopped: 'Stopped', failed: 'Failed' }[run.status] ?? run.status;
}

/** A run can be chatted with once it has written a checkpoint. */
export function canChat(run: RunSummary): boolean {
  return run.checkpoints.length > 0;
}

export function newestFirst(runs: RunSummary[]): RunSummary[] {
  return [...runs].sort((a, b) => b.updatedUnix - a.updatedUnix);
}
