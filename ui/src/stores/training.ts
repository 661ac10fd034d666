// The Train page's state as a pure fold over a job's events: `reduce(state, event)` returns a new
// state and never mutates, so it is trivially tested and can be replayed from saved metrics.
import type { Event, Finding, RunMetrics } from '../ipc/types';

export type TrainingStatus = 'idle' | 'running' | 'stopping' | 'stopped' | 'finished' | 'failed';

export interface Point {
  step: number;
  value: number;
}

export interface TrainingState {
  status: TrainingStatus;
  /** Training loss per logged step, steps strictly increasing (uPlot needs sorted x). */
  loss: Point[];
  /** Validation loss per eval, steps strictly increasing. */
  valLoss: Point[];
  step: number;
  total: number;
  lr: number | null;
  tokensPerSec: number | null;
  etaSecs: number | null;
  epoch: number | null;
  perplexity: number | null;
  bestValLoss: number | null;
  /** Newest first, at most MAX_SAMPLES. */
  samples: { step: number; text: string }[];
  /** Oldest first, as written. */
  checkpoints: { step: number; path: string }[];
  /** Newest last, at most MAX_LOGS. */
  logs: { level: 'info' | 'warn'; message: string }[];
  /** What the training doctor said, oldest first (one per kind). */
  findings: Finding[];
  /** The stage currently reporting progress (tokenising, downloading…), cleared by the first step. */
  progress: { stage: string; done: number; total: number; unit: string } | null;
  error: { kind: string; message: string } | null;
  summary: unknown;
}

export const MAX_SAMPLES = 20;
export const MAX_LOGS = 200;

export function initialTraining(): TrainingState {
  return {
    status: 'idle',
    loss: [],
    valLoss: [],
    step: 0,
    total: 0,
    lr: null,
    tokensPerSec: null,
    etaSecs: null,
    epoch: null,
    perplexity: null,
    bestValLoss: null,
    samples: [],
    checkpoints: [],
    logs: [],
    findings: [],
    progress: null,
    error: null,
    summary: null,
  };
}

/** The user pressed Stop: the job saves a checkpoint, then its stream ends. */
export function stopping(state: TrainingState): TrainingState {
  return state.status === 'running' ? { ...state, status: 'stopping' } : state;
}

/** A state for a job that has just been started (keeping any history, e.g. when resuming). */
export function started(state: TrainingState = initialTraining()): TrainingState {
  return { ...state, status: 'running', error: null, summary: null, progress: null, etaSecs: null };
}

/**
 * Appends a point keeping steps strictly increasing: a repeated step replaces the last point and
 * an older step (a resumed run replaying from its checkpoint) drops the points after it.
 */
export function appendPoint(points: Point[], p: Point): Point[] {
  let keep = points.length;
  while (keep > 0 && points[keep - 1].step >= p.step) keep--;
  return [...points.slice(0, keep), p];
}

function minOrNull(a: number | null, b: number): number | null {
  if (!Number.isFinite(b)) return a;
  return a == null ? b : Math.min(a, b);
}

export function reduce(state: TrainingState, event: Event): TrainingState {
  switch (event.type) {
    case 'trainStep':
      return {
        ...state,
        status: state.status === 'idle' ? 'running' : state.status,
        loss: appendPoint(state.loss, { step: event.step, value: event.loss }),
        step: event.step,
        total: event.total,
        lr: event.lr,
        tokensPerSec: event.tokensPerSec,
        etaSecs: event.etaSecs,
        epoch: event.epoch,
        progress: null,
      };
    case 'eval':
      return {
        ...state,
        valLoss: appendPoint(state.valLoss, { step: event.step, value: event.valLoss }),
        perplexity: event.perplexity,
        bestValLoss: minOrNull(state.bestValLoss, event.valLoss),
      };
    case 'sample':
      return {
        ...state,
        samples: [{ step: event.step, text: event.text }, ...state.samples].slice(0, MAX_SAMPLES),
      };
    case 'checkpoint':
      return {
        ...state,
        checkpoints: [...state.checkpoints.filter((c) => c.step !== event.step), { step: event.step, path: event.path }],
      };
    case 'finding':
      return {
        ...state,
        findings: [...state.findings.filter((f) => f.kind !== event.kind), { kind: event.kind, step: event.step, message: event.message, remedy: event.remedy }],
      };
    case 'progress':
      return { ...state, progress: { stage: event.stage, done: event.done, total: event.total, unit: event.unit } };
    case 'log':
      return {
        ...state,
        logs: [...state.logs, { level: event.level, message: event.message }].slice(-MAX_LOGS),
      };
    case 'finished': {
      // A job the user asked to stop still finishes normally (after saving a checkpoint).
      const status = state.status === 'stopping' ? 'stopped' : 'finished';
      return { ...state, status, summary: event.summary, progress: null, etaSecs: status === 'finished' ? 0 : null };
    }
    case 'failed':
      // A stop is reported by the engine as kind "cancelled"; it saved a checkpoint, so it is not
      // an error the user needs to act on.
      if (event.kind === 'cancelled') {
        return { ...state, status: 'stopped', progress: null, etaSecs: null };
      }
      return {
        ...state,
        status: 'failed',
        error: { kind: event.kind, message: event.message },
        progress: null,
        etaSecs: null,
      };
    case 'token':
      return state;
  }
}

/** The history of a saved run, as if its events had been replayed. */
export function fromMetrics(metrics: RunMetrics, total = 0): TrainingState {
  let s = initialTraining();
  for (const p of metrics.steps) s = { ...s, loss: appendPoint(s.loss, { step: p.step, value: p.loss }) };
  for (const e of metrics.evals) {
    s = {
      ...s,
      valLoss: appendPoint(s.valLoss, { step: e.step, value: e.valLoss }),
      bestValLoss: minOrNull(s.bestValLoss, e.valLoss),
    };
  }
  const last = s.loss.at(-1)?.step ?? 0;
  const samples = [...metrics.samples].reverse().slice(0, MAX_SAMPLES);
  // One finding per kind, the newest (a resumed run may have said one again).
  const findings = [...new Map((metrics.findings ?? []).map((f) => [f.kind, f])).values()];
  return { ...s, step: last, total: Math.max(total, last), samples, findings };
}

/**
 * uPlot's aligned data: one shared x axis (the union of steps) and one y series per line, with
 * null where a series has no point at that step (drawn with spanGaps).
 */
export function chartData(state: Pick<TrainingState, 'loss' | 'valLoss'>): [number[], (number | null)[], (number | null)[]] {
  const xs: number[] = [];
  const train: (number | null)[] = [];
  const val: (number | null)[] = [];
  let i = 0;
  let j = 0;
  const { loss, valLoss } = state;
  // Merge two step-sorted lists.
  while (i < loss.length || j < valLoss.length) {
    const a = i < loss.length ? loss[i].step : Infinity;
    const b = j < valLoss.length ? valLoss[j].step : Infinity;
    const step = Math.min(a, b);
    xs.push(step);
    train.push(a === step ? loss[i++].value : null);
    val.push(b === step ? valLoss[j++].value : null);
  }
  return [xs, train, val];
}

export function isActive(state: TrainingState): boolean {
  return state.status === 'running' || state.status === 'stopping';
}
