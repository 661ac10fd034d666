// Runs as the Runs page presents them.
import type { RunSummary } from '../ipc/types';

/**
 * Whether "Resume" makes sense. A run marked `running` that is not the current job
 * was interrupted (the app closed or crashed), so its last checkpoint can be resumed.
 */
export function isResumable(run: RunSummary, activeRunPath: string | null): boolean {
  if (activeRunPath !== null && run.path === activeRunPath) return false;
  const hasCheckpoint = run.checkpoints.length > 0;
  if (isInterrupted(run, activeRunPath)) return true;
  if (run.status === 'stopped' || run.status === 'failed') return hasCheckpoint;
  return run.resumable;
}

/**
 * Stopped before the end without anyone pressing Stop: the app closed or crashed while the run
 * said `running` (and it is not the job training now), or the backend already calls it
 * `interrupted`.
 */
export function isInterrupted(run: RunSummary, activeRunPath: string | null): boolean {
  if (run.status === 'interrupted') return true;
  return run.status === 'running' && run.path !== activeRunPath;
}

/** The run's status in words, accounting for interrupted runs. */
export function statusLabel(run: RunSummary, activeRunPath: string | null): string {
  if (isInterrupted(run, activeRunPath)) return 'Stopped before the end — can be resumed';
  if (run.status === 'running') return 'Training now';
  return { completed: 'Completed', stopped: 'Stopped', failed: 'Failed' }[run.status] ?? run.status;
}

/** A run can be chatted with once it has written a checkpoint. */
export function canChat(run: RunSummary): boolean {
  return run.checkpoints.length > 0;
}

export function newestFirst(runs: RunSummary[]): RunSummary[] {
  return [...runs].sort((a, b) => b.updatedUnix - a.updatedUnix);
}
