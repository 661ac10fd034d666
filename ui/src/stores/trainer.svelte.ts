// The training job: starts, stops and resumes it, folds its event stream into TrainingState, and
// remembers which run the Train page is showing. One job at a time (the backend enforces it too).
import { currentJob, resumeTraining, resumeTrainingFrom, runMetrics, startTraining, stopJob } from '../ipc/commands';
import { toCommandError } from '../ipc/errors';
import type { CommandError, Event, JobStarted, RunStatus, RunSummary, TrainConfig } from '../ipc/types';
import { fromMetrics, initialTraining, isActive, reduce, started, stopping, type TrainingState } from './training';

export interface ShownRun {
  path: string;
  name: string;
}

export class Trainer {
  state = $state.raw<TrainingState>(initialTraining());
  job = $state<JobStarted | null>(null);
  run = $state<ShownRun | null>(null);
  /** A command that was refused (busy, bad config…); stream failures live in `state.error`. */
  error = $state<CommandError | null>(null);
  starting = $state(false);
  /** Called when a job's stream ends, e.g. to refresh the runs list. */
  onJobEnd: () => void = () => {};

  // Each job gets a sequence number so late events of an older stream are ignored.
  #seq = 0;

  get active(): boolean {
    return this.starting || isActive(this.state);
  }

  #listener(seq: number) {
    return (event: Event) => {
      if (seq !== this.#seq) return;
      this.state = reduce(this.state, event);
      if (event.type === 'finished' || event.type === 'failed') {
        this.job = null;
        this.onJobEnd();
      }
    };
  }

  async #launch(
    history: TrainingState,
    name: string,
    runPath: string | null,
    begin: (onEvent: (e: Event) => void) => Promise<JobStarted>,
  ) {
    if (this.active) return;
    const before = { state: this.state, run: this.run };
    const seq = ++this.#seq;
    this.error = null;
    this.starting = true;
    this.state = started(history);
    this.run = runPath ? { path: runPath, name } : null;
    try {
      const job = await begin(this.#listener(seq));
      if (seq !== this.#seq) return;
      this.run = { path: job.runPath, name };
      // The stream may already have ended (e.g. failed on the first file) before the reply came.
      if (isActive(this.state)) this.job = job;
    } catch (e) {
      if (seq !== this.#seq) return;
      this.error = toCommandError(e);
      this.state = before.state;
      this.run = before.run;
    } finally {
      this.starting = false;
    }
  }

  start(name: string, config: TrainConfig) {
    return this.#launch(initialTraining(), name, null, (onEvent) => startTraining(name, config, onEvent));
  }

  /** Continues a saved run from its latest checkpoint, keeping its chart history. */
  async resume(run: ShownRun) {
    if (this.active) return;
    let history = initialTraining();
    try {
      history = fromMetrics(await runMetrics(run.path));
    } catch {
      // History is only for the chart; resuming works without it.
    }
    return this.#launch(history, run.name, run.path, (onEvent) => resumeTraining(run.path, onEvent));
  }

  /**
   * The doctor's remedy for a run that diverged or stalled: back to checkpoint `step` (0: the
   * start) at learning rate `lr`. The chart keeps the history up to that step.
   */
  async resumeFrom(run: ShownRun, step: number | null, lr: number) {
    if (this.active) return;
    let history = initialTraining();
    try {
      const m = await runMetrics(run.path);
      const upTo = step ?? Infinity;
      history = fromMetrics({
        ...m,
        steps: m.steps.filter((p) => p.step <= upTo),
        evals: m.evals.filter((p) => p.step <= upTo),
        samples: m.samples.filter((p) => p.step <= upTo),
        findings: (m.findings ?? []).filter((f) => f.step <= upTo),
      });
    } catch {
      // History is only for the chart.
    }
    return this.#launch(history, run.name, run.path, (onEvent) => resumeTrainingFrom(run.path, step, lr, onEvent));
  }

  async stop() {
    if (!this.job) return;
    try {
      await stopJob(this.job.jobId);
      this.state = stopping(this.state);
    } catch (e) {
      this.error = toCommandError(e);
    }
  }

  /**
   * After a page reload: if a training still runs, shows its run (history from disk, then the
   * latest step the backend replays) and follows its stream again, so Stop and the chart work.
   */
  async reattach() {
    if (this.active) return;
    const seq = ++this.#seq;
    const listen = this.#listener(seq);
    // Replayed events can arrive before the reply; they wait until the history is in place.
    let early: Event[] | null = [];
    let job;
    try {
      job = await currentJob('train', (e) => (early ? early.push(e) : listen(e)));
    } catch {
      return; // nothing to re-attach to is not an error worth showing
    }
    if (seq !== this.#seq || !job?.runPath) return;
    let history = initialTraining();
    try {
      history = fromMetrics(await runMetrics(job.runPath));
    } catch {
      // History is only for the chart; following the job works without it.
    }
    if (seq !== this.#seq) return;
    this.state = started(history);
    this.run = { path: job.runPath, name: job.name ?? '' };
    this.job = { jobId: job.jobId, runPath: job.runPath };
    const waiting = early;
    early = null;
    for (const e of waiting) listen(e);
  }

  /** Shows a saved run's history (not while another job is training). */
  async open(run: RunSummary) {
    // While training, the live view is the only one (and already shows the job's run).
    if (this.active) return;
    try {
      const metrics = await runMetrics(run.path);
      this.#seq++;
      this.state = {
        ...fromMetrics(metrics, run.totalSteps),
        status: SHOWN_AS[run.status],
        checkpoints: run.checkpoints.map((step) => ({ step, path: '' })),
        error: run.error ? { kind: 'failed', message: run.error } : null,
      };
      this.run = { path: run.path, name: run.name };
      this.error = null;
    } catch (e) {
      this.error = toCommandError(e);
    }
  }
}

/** A saved run's status (decided by the engine) as the Train page shows an opened run's history. */
export const SHOWN_AS: Record<RunStatus, TrainingState['status']> = {
  completed: 'finished',
  failed: 'failed',
  stopped: 'stopped',
  interrupted: 'stopped',
  // Trained by another process (the command line): this page shows its saved history, not live.
  running: 'stopped',
}

export const trainer = new Trainer();
