// The Evaluate page: which run, which of its models (the base it started from, its checkpoints)
// and which examples; the job that answers and scores them; the results laid out for comparison.
import { evaluateRun, stopJob } from '../ipc/commands';
import { toCommandError } from '../ipc/errors';
import type { CommandError, RunSummary, ScoreReport, Target, TargetReport } from '../ipc/types';

/** The corpus figures the page shows, in order: label, key, whether higher is better, scale. */
export const FIGURES: { label: string; get: (r: ScoreReport) => number | null | undefined; higher: boolean; percent: boolean }[] = [
  { label: 'BLEU', get: (r) => r.bleu, higher: true, percent: false },
  { label: 'chrF', get: (r) => r.chrf, higher: true, percent: false },
  { label: 'ROUGE-L', get: (r) => (r.rougeL == null ? null : r.rougeL * 100), higher: true, percent: false },
  { label: 'Exact answers', get: (r) => r.exact, higher: true, percent: true },
  { label: 'Perplexity', get: (r) => r.perplexity, higher: false, percent: false },
  { label: 'Copied from training', get: (r) => (r.copied == null ? null : r.copied * 100), higher: false, percent: true },
];

/** The index of the best value among `values` (null: none, or a tie for best). */
export function bestOf(values: (number | null | undefined)[], higher: boolean): number | null {
  let best: number | null = null;
  let tie = false;
  values.forEach((v, i) => {
    if (v == null || !Number.isFinite(v)) return;
    const b = best === null ? null : values[best]!;
    if (b === null || (higher ? v > b : v < b)) {
      best = i;
      tie = false;
    } else if (v === b) tie = true;
  });
  return tie ? null : best;
}

/** What to offer for a run: its base (unless trained from scratch) and each checkpoint. */
export function targetsOf(run: RunSummary): { target: Target; label: string }[] {
  const out: { target: Target; label: string }[] = [];
  if (!run.model.startsWith('scratch:')) out.push({ target: { kind: 'base' }, label: `The model it started from (${run.model})` });
  for (const step of run.checkpoints) {
    out.push({ target: { kind: 'checkpoint', step }, label: `Step ${step.toLocaleString('en-US')}${step === run.bestStep ? ' (best)' : ''}` });
  }
  return out;
}

/** The usual comparison: where it started against its best (else newest) checkpoint. */
export function defaultTargets(run: RunSummary): Target[] {
  const out: Target[] = [];
  if (!run.model.startsWith('scratch:')) out.push({ kind: 'base' });
  const step = run.bestStep ?? run.checkpoints.at(-1);
  if (step != null) out.push({ kind: 'checkpoint', step });
  return out;
}

export const sameTarget = (a: Target, b: Target) => a.kind === b.kind && (a.kind === 'base' || (b.kind === 'checkpoint' && a.step === b.step));

export class Evaluation {
  running = $state(false);
  stage = $state('');
  results = $state<TargetReport[] | null>(null);
  error = $state<CommandError | null>(null);
  #jobId: string | null = null;

  async run(runPath: string, pairs: string | null, targets: Target[]) {
    if (this.running) return;
    const jobId = crypto.randomUUID();
    this.#jobId = jobId;
    this.running = true;
    this.error = null;
    this.results = null;
    this.stage = 'Starting';
    try {
      this.results = await evaluateRun(jobId, runPath, pairs, targets, (event) => {
        if (event.type === 'progress') this.stage = event.stage;
      });
    } catch (e) {
      const err = toCommandError(e);
      if (err.kind !== 'cancelled') this.error = err;
    } finally {
      this.running = false;
      this.#jobId = null;
    }
  }

  async stop() {
    if (!this.#jobId) return;
    try {
      await stopJob(this.#jobId);
    } catch (e) {
      this.error = toCommandError(e);
    }
  }
}

export const evaluation = new Evaluation();
