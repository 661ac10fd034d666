// Hub model downloads started from the Model page, with their progress and plain errors.
import { downloadModel, stopJob } from '../ipc/commands';
import { toCommandError } from '../ipc/errors';
import type { CommandError } from '../ipc/types';

export interface DownloadState {
  status: 'downloading' | 'done' | 'failed';
  stage: string;
  done: number;
  total: number;
  path: string | null;
  error: CommandError | null;
  /** The backend job, so Stop can reach it. */
  jobId: string;
}

export class Downloads {
  byId = $state<Record<string, DownloadState>>({});

  async start(id: string) {
    if (this.byId[id]?.status === 'downloading') return;
    const jobId = crypto.randomUUID();
    this.byId[id] = { status: 'downloading', stage: 'Connecting', done: 0, total: 0, path: null, error: null, jobId };
    const entry = this.byId[id];
    try {
      entry.path = await downloadModel(jobId, id, (event) => {
        if (event.type === 'progress') {
          entry.stage = event.stage;
          entry.done = event.done;
          entry.total = event.total;
        }
      });
      entry.status = 'done';
    } catch (e) {
      const err = toCommandError(e);
      // A stopped download left nothing behind: the model is simply not downloaded.
      if (err.kind === 'cancelled') delete this.byId[id];
      else {
        entry.status = 'failed';
        entry.error = err;
      }
    }
  }

  /** Stops a running download (the backend removes its partial file). */
  async stop(id: string) {
    const entry = this.byId[id];
    if (entry?.status !== 'downloading') return;
    try {
      await stopJob(entry.jobId);
    } catch (e) {
      entry.error = toCommandError(e);
    }
  }
}

export const downloads = new Downloads();
