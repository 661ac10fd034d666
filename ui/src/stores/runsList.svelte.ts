// The saved runs, refreshed on demand and after every training job ends.
import { deleteRun, listRuns, renameRun } from '../ipc/commands';
import { toCommandError } from '../ipc/errors';
import type { CommandError, RunSummary } from '../ipc/types';
import { newestFirst } from './runs';

export class RunsList {
  list = $state<RunSummary[]>([]);
  error = $state<CommandError | null>(null);
  loading = $state(false);

  find(path: string): RunSummary | undefined {
    return this.list.find((r) => r.path === path);
  }

  async refresh() {
    this.loading = true;
    try {
      this.list = newestFirst(await listRuns());
      this.error = null;
    } catch (e) {
      this.error = toCommandError(e);
    } finally {
      this.loading = false;
    }
  }

  /** Resolves with the renamed run, or null (the error is shown on the page). */
  async rename(path: string, newName: string): Promise<RunSummary | null> {
    try {
      const updated = await renameRun(path, newName);
      this.list = this.list.map((r) => (r.path === path ? updated : r));
      this.error = null;
      return updated;
    } catch (e) {
      this.error = toCommandError(e);
      return null;
    }
  }

  async remove(path: string): Promise<boolean> {
    try {
      await deleteRun(path);
      this.list = this.list.filter((r) => r.path !== path);
      this.error = null;
      return true;
    } catch (e) {
      this.error = toCommandError(e);
      return false;
    }
  }
}

export const runs = new RunsList();
