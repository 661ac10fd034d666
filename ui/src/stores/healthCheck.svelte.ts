// The Data page's corpus health report, refreshed whenever the files or the options change. Only
// the newest request's answer is shown: reading a big folder can be overtaken by a later change.
import { dataReport } from '../ipc/commands';
import { toCommandError } from '../ipc/errors';
import type { CommandError, PrepareOptions, Report } from '../ipc/types';

export class HealthCheck {
  report = $state<Report | null>(null);
  /** The files `report` describes. */
  paths = $state<string[]>([]);
  loading = $state(false);
  error = $state<CommandError | null>(null);
  #latest = 0;

  async refresh(paths: string[], options: PrepareOptions) {
    const ticket = ++this.#latest;
    if (paths.length === 0) {
      this.report = null;
      this.paths = [];
      this.loading = false;
      return;
    }
    this.loading = true;
    try {
      const report = await dataReport(paths, options);
      if (ticket === this.#latest) {
        this.report = report;
        this.paths = [...paths];
        this.error = null;
      }
    } catch (e) {
      if (ticket === this.#latest) this.error = toCommandError(e);
    } finally {
      if (ticket === this.#latest) this.loading = false;
    }
  }

  /** The report only if it describes exactly these files (a stale one must not set lengths). */
  reportFor(paths: string[]): Report | null {
    const same = this.paths.length === paths.length && this.paths.every((p, i) => p === paths[i]);
    return same ? this.report : null;
  }
}

/** "4 %" for a share from 0 to 1. */
export function percent(share: number): string {
  return `${Math.round(share * 100)} %`;
}

export const healthCheck = new HealthCheck();
