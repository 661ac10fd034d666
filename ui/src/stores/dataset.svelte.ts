// The files the user wants the model to learn from, as inspected by the backend. The list is
// remembered between launches (paths only) and inspected afresh on the next start.
import { demoDataset, inspectFiles } from '../ipc/commands';
import { toCommandError } from '../ipc/errors';
import type { CommandError, FileReport } from '../ipc/types';
import { mergeReports, removeReport, usablePaths } from './data';
import { loadFiles, rememberFiles } from './remember';

export class Dataset {
  files = $state<FileReport[]>([]);
  error = $state<CommandError | null>(null);
  loading = $state(false);
  /** Path of the file whose preview is open. */
  selected = $state<string | null>(null);

  get usable(): string[] {
    return usablePaths(this.files);
  }

  async add(paths: string[]) {
    if (paths.length === 0) return;
    this.loading = true;
    this.error = null;
    try {
      const reports = await inspectFiles(paths);
      this.files = mergeReports(this.files, reports);
      this.#remember();
    } catch (e) {
      this.error = toCommandError(e);
    } finally {
      this.loading = false;
    }
  }

  async useDemo() {
    this.error = null;
    try {
      await this.add([await demoDataset()]);
    } catch (e) {
      this.error = toCommandError(e);
    }
  }

  remove(path: string) {
    this.files = removeReport(this.files, path);
    if (this.selected === path) this.selected = null;
    this.#remember();
  }

  /** Launch: the files listed last time, read again (a moved or changed file shows its reason). */
  async restore() {
    await this.add(loadFiles());
  }

  #remember() {
    rememberFiles(this.files.map((f) => f.path));
  }
}

export const dataset = new Dataset();
