// Taking a run's model out of the app: one export at a time (a job with progress and Stop), and
// the one model served on this computer with its copyable examples.
import { exportRun, serving, startServing, stopJob, stopServing } from '../ipc/commands';
import { toCommandError } from '../ipc/errors';
import type { CommandError, ExportFormat, ExportReport, Quant, ServeInfo } from '../ipc/types';

/** The export choices, in the words the Runs page shows. */
export const EXPORT_FORMATS: { format: ExportFormat; label: string; help: string; quant: boolean; loraOnly?: boolean }[] = [
  { format: 'ollama', label: 'Ollama', help: 'A folder to add to Ollama with one command.', quant: true },
  { format: 'gguf', label: 'GGUF file', help: 'One file for llama.cpp, LM Studio, GPT4All and other local apps.', quant: true },
  { format: 'hf', label: 'Hugging Face', help: 'A transformers folder, for Python programs and the hub.', quant: false },
  { format: 'peft', label: 'LoRA adapter only', help: 'Just what training changed, for people who keep the base model elsewhere.', quant: false, loraOnly: true },
  { format: 'job', label: 'GPU job', help: 'The same training, ready to run on machines with GPUs (TRL or Axolotl).', quant: false },
];

export const QUANTS: { quant: Quant; label: string }[] = [
  { quant: 'q8_0', label: '8-bit (q8_0): a quarter of the size, nearly the same answers' },
  { quant: 'q4_k_m', label: '4-bit (q4_k_m): an eighth of the size, slightly different answers' },
  { quant: 'f16', label: '16-bit (f16): half the size, the same answers' },
  { quant: 'f32', label: 'Full precision (f32): the exact model' },
];

export interface ExportState {
  runPath: string;
  status: 'running' | 'done' | 'failed';
  stage: string;
  done: number;
  total: number;
  report: ExportReport | null;
  error: CommandError | null;
  jobId: string;
}

export class Sharing {
  exporting = $state<ExportState | null>(null);
  served = $state<ServeInfo | null>(null);
  starting = $state<string | null>(null);
  serveError = $state<CommandError | null>(null);

  get busy() {
    return this.exporting?.status === 'running';
  }

  async export(runPath: string, format: ExportFormat, quant: Quant | null) {
    if (this.busy) return;
    const jobId = crypto.randomUUID();
    this.exporting = { runPath, status: 'running', stage: 'Starting', done: 0, total: 0, report: null, error: null, jobId };
    const entry = this.exporting;
    try {
      entry.report = await exportRun(jobId, runPath, format, quant, (event) => {
        if (event.type === 'progress') {
          entry.stage = event.stage;
          entry.done = event.done;
          entry.total = event.total;
        }
      });
      entry.status = 'done';
    } catch (e) {
      const err = toCommandError(e);
      // A stopped export left nothing behind.
      if (err.kind === 'cancelled') this.exporting = null;
      else {
        entry.status = 'failed';
        entry.error = err;
      }
    }
  }

  async stopExport() {
    if (!this.busy || !this.exporting) return;
    try {
      await stopJob(this.exporting.jobId);
    } catch (e) {
      this.exporting.error = toCommandError(e);
    }
  }

  /** Asks which model is served (after a reload); when the answer fails, nothing is shown. */
  async refresh() {
    try {
      this.served = await serving();
    } catch {
      this.served = null;
    }
  }

  async serve(runPath: string) {
    this.starting = runPath;
    this.serveError = null;
    try {
      this.served = await startServing(runPath);
    } catch (e) {
      this.serveError = toCommandError(e);
    } finally {
      this.starting = null;
    }
  }

  async stop() {
    try {
      await stopServing();
      this.served = null;
    } catch (e) {
      this.serveError = toCommandError(e);
    }
  }
}

export const sharing = new Sharing();
