// One generation job: streams `token` events into text the UI can show as it arrives, and exposes
// the job id so Stop works before the final answer resolves.
import { generate, stopJob } from '../ipc/commands';
import type { GenerateConfig, Generation } from '../ipc/types';
import { visibleText } from './chat';

export interface GenerationHandlers {
  /** The text so far, with stop strings (and possible beginnings of one) held back. */
  onText: (text: string) => void;
  /** Loading progress (e.g. a hub model downloading before the first token). */
  onProgress?: (stage: string, done: number, total: number, unit: string) => void;
}

export interface RunningGeneration {
  jobId: string;
  done: Promise<Generation[]>;
  stop: () => Promise<void>;
}

export function startGeneration(model: string, config: GenerateConfig, h: GenerationHandlers): RunningGeneration {
  const jobId = crypto.randomUUID();
  let raw = '';
  const done = generate(jobId, model, config, (event) => {
    if (event.type === 'token') {
      raw += event.text;
      h.onText(visibleText(raw, config.stop));
    } else if (event.type === 'progress') {
      h.onProgress?.(event.stage, event.done, event.total, event.unit);
    }
    // `failed` also rejects the command's promise, which is where the caller handles it.
  });
  return { jobId, done, stop: () => stopJob(jobId) };
}
