// Runs as the Runs page presents them. The engine decides a run's status and whether it can be
// resumed (`RunSummary.status`, `.resumable`); this module only puts them into words.
import type { RunStatus, RunSummary } from '../ipc/types';

/** How a status badge looks: `bad` (red), `warn` (amber) or plain. */
export type StatusTone = 'bad' | 'warn' | null;

/** Every status the engine reports; a new one in Rust fails the type check until it has words. */
export const RUN_STATUS: Record<RunStatus, { label: string; tone: StatusTone }> = {
  running: { label: 'Training now', tone: null },
  completed: { label: 'Completed', tone: null },
  stopped: { label: 'Stopped', tone: 'warn' },
  failed: { label: 'Failed', tone: 'bad' },
  interrupted: { label: 'Stopped before the end — can be resumed', tone: 'warn' },
};

export function statusLabel(run: RunSummary): string {
  return RUN_STATUS[run.status].label;
}

export function statusTone(run: RunSummary): StatusTone {
  return RUN_STATUS[run.status].tone;
}

/** Stopped before the end without anyone pressing Stop (the engine found no process training it). */
export function isInterrupted(run: RunSummary): boolean {
  return run.status === 'interrupted';
}

/** Whether "Resume" makes sense: the engine's verdict, except for the run being trained now. */
export function isResumable(run: RunSummary, activeRunPath: string | null): boolean {
  return run.resumable && run.path !== activeRunPath;
}

/** A run can be chatted with once it has written a checkpoint. */
export function canChat(run: RunSummary): boolean {
  return run.checkpoints.length > 0;
}

export function newestFirst(runs: RunSummary[]): RunSummary[] {
  return [...runs].sort((a, b) => b.updatedUnix - a.updatedUnix);
}
