// Hub model downloads started from the Model page, with their progress and plain errors.
import { downloadModel } from '../ipc/commands';
import { toCommandError } from '../ipc/errors';
import type { CommandError } from '../ipc/types';

export interface DownloadState {
  status: 'downloading' | 'done' | 'failed';
  stage: string;
  done: number;
  total: number;
  path: string | null;
  error: CommandError | null;
}

export class Downloads {
  byId = $state<Record<string, DownloadState>>({});

  async start(id: string) {
    if (this.byId[id]?.status === 'downloading') return;
    this.byId[id] = { status: 'downloading', stage: 'Connecting', done: 0, total: 0, path: null, error: null };
    const entry = this.byId[id];
    try {
      entry.path = await downloadModel(id, (event) => {
        if (event.type === 'progress') {
          entry.stage = event.stage;
          entry.done = event.done;
          entry.total = event.total;
        }
      });
      entry.status = 'done';
    } catch (e) {
      entry.status = 'failed';
      entry.error = toCommandError(e);
    }
  }
}

export const downloads = new Downloads();
