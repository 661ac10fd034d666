// The estimate before training: a job that takes a few real steps of the prepared config and
// says how long the run will take and how much memory it needs. The estimate belongs to the
// config it measured; any change to the config makes it stale (shown as such, not as current).
import { estimateTraining, stopJob } from '../ipc/commands';
import { toCommandError } from '../ipc/errors';
import type { CommandError, Estimate, TrainConfig } from '../ipc/types';

export class Estimator {
  running = $state(false);
  stage = $state('');
  result = $state<Estimate | null>(null);
  /** The config `result` was measured for, as JSON. */
  measured = $state<string | null>(null);
  error = $state<CommandError | null>(null);
  #jobId: string | null = null;

  /** Whether `result` still describes `config` (its length aside: the pace per step holds). */
  current(config: TrainConfig | null): boolean {
    return this.result !== null && config !== null && paceKey(config) === this.measured;
  }

  async run(config: TrainConfig) {
    if (this.running) return;
    const jobId = crypto.randomUUID();
    this.#jobId = jobId;
    this.running = true;
    this.error = null;
    this.stage = 'Preparing';
    try {
      this.result = await estimateTraining(jobId, config, (event) => {
        if (event.type === 'progress') this.stage = event.stage;
      });
      this.measured = paceKey(config);
    } catch (e) {
      const err = toCommandError(e);
      if (err.kind !== 'cancelled') this.error = err;
    } finally {
      this.running = false;
      this.#jobId = null;
    }
  }

  async stop() {
    if (this.#jobId) {
      try {
        await stopJob(this.#jobId);
      } catch (e) {
        this.error = toCommandError(e);
      }
    }
  }
}

/** What the pace per step depends on: everything but the run's length. */
function paceKey(c: TrainConfig): string {
  return JSON.stringify({ ...c, steps: null, epochs: null, early_stop_patience: null });
}

/** "about 25 minutes for 1,000 steps, about 3.1 GB of the 16.0 GB free" for `steps` steps. */
export function describeEstimate(e: Estimate, steps: number): string {
  const secs = (e.totalSecs / Math.max(1, e.steps)) * steps;
  const time = secs < 90 ? `${Math.max(1, Math.round(secs))} seconds` : secs < 5400 ? `${Math.round(secs / 60)} minutes` : `${(secs / 3600).toFixed(1)} hours`;
  const gb = (b: bigint | number) => (Number(b) / 1e9).toFixed(1);
  const memory =
    e.peakBytes == null ? '' : e.machineAvailableBytes == null ? `, about ${gb(e.peakBytes)} GB` : `, about ${gb(e.peakBytes)} GB of the ${gb(e.machineAvailableBytes)} GB free`;
  return `about ${time} for ${steps.toLocaleString('en-US')} steps${memory}`;
}

/** Steps that fill `minutes` at the measured pace (validation included), at least 1. */
export function stepsForMinutes(e: Estimate, minutes: number): number {
  const perStep = e.totalSecs / Math.max(1, e.steps);
  return Math.max(1, Math.floor((minutes * 60) / Math.max(perStep, 1e-9)));
}

export const estimator = new Estimator();
