import { describe, expect, it } from 'vitest';
import type { Event } from '../ipc/types';
import { appendPoint, chartData, fromMetrics, initialTraining, MAX_SAMPLES, reduce, started, stopping, type TrainingState } from './training';

const step = (n: number, loss: number, over: Partial<Extract<Event, { type: 'trainStep' }>> = {}): Event => ({
  type: 'trainStep',
  step: n,
  total: 200,
  loss,
  lr: 1e-3,
  tokensPerSec: 5000,
  etaSecs: 90,
  epoch: n / 100,
  ...over,
});

const fold = (events: Event[], from: TrainingState = started()) => events.reduce(reduce, from);

describe('reduce', () => {
  it('trainStep appends a loss point and updates the live numbers', () => {
    const s = fold([step(10, 5.5), step(20, 4.75, { tokensPerSec: 6100, etaSecs: 42 })]);
    expect(s.loss).toEqual([{ step: 10, value: 5.5 }, { step: 20, value: 4.75 }]);
    expect(s.step).toBe(20);
    expect(s.total).toBe(200);
    expect(s.tokensPerSec).toBe(6100);
    expect(s.etaSecs).toBe(42);
    expect(s.epoch).toBeCloseTo(0.2);
    expect(s.status).toBe('running');
  });

  it('eval adds a validation point and tracks the best loss', () => {
    const s = fold([
      { type: 'eval', step: 50, valLoss: 4.2, perplexity: 66.7 },
      { type: 'eval', step: 100, valLoss: 3.9, perplexity: 49.4 },
      { type: 'eval', step: 150, valLoss: 4.05, perplexity: 57.4 },
    ]);
    expect(s.valLoss.map((p) => p.value)).toEqual([4.2, 3.9, 4.05]);
    expect(s.bestValLoss).toBe(3.9);
    expect(s.perplexity).toBe(57.4);
  });

  it('checkpoint events are listed once per step, in order', () => {
    const s = fold([
      { type: 'checkpoint', step: 100, path: '/r/checkpoints/step-100' },
      { type: 'checkpoint', step: 200, path: '/r/checkpoints/step-200' },
      { type: 'checkpoint', step: 200, path: '/r/checkpoints/step-200' },
    ]);
    expect(s.checkpoints).toEqual([
      { step: 100, path: '/r/checkpoints/step-100' },
      { step: 200, path: '/r/checkpoints/step-200' },
    ]);
  });

  it('samples are kept newest first and capped', () => {
    const events: Event[] = Array.from({ length: MAX_SAMPLES + 5 }, (_, i) => ({ type: 'sample', step: (i + 1) * 10, text: `s${i + 1}` }));
    const s = fold(events);
    expect(s.samples).toHaveLength(MAX_SAMPLES);
    expect(s.samples[0]).toEqual({ step: (MAX_SAMPLES + 5) * 10, text: `s${MAX_SAMPLES + 5}` });
  });

  it('progress is shown until the first step arrives', () => {
    let s = fold([{ type: 'progress', stage: 'Tokenising', done: 3, total: 10, unit: 'files' }]);
    expect(s.progress).toEqual({ stage: 'Tokenising', done: 3, total: 10, unit: 'files' });
    s = reduce(s, step(10, 6));
    expect(s.progress).toBeNull();
  });

  it('finished ends the job and keeps the summary', () => {
    const s = fold([step(200, 3.1), { type: 'finished', summary: { steps: 200 } }]);
    expect(s.status).toBe('finished');
    expect(s.summary).toEqual({ steps: 200 });
    expect(s.etaSecs).toBe(0);
  });

  it('finished after the user pressed Stop means stopped (resumable), not finished', () => {
    const s = reduce(stopping(fold([step(60, 4)])), { type: 'finished', summary: null });
    expect(s.status).toBe('stopped');
  });

  it('failed keeps the message for the page to show', () => {
    const s = fold([step(10, 5), { type: 'failed', kind: 'data', message: 'notes.md: the file is empty; remove it' }]);
    expect(s.status).toBe('failed');
    expect(s.error).toEqual({ kind: 'data', message: 'notes.md: the file is empty; remove it' });
    expect(s.loss).toHaveLength(1); // history stays visible
  });

  it('a cancelled failure is a stop, not an error', () => {
    const s = fold([{ type: 'failed', kind: 'cancelled', message: 'stopped by the user' }]);
    expect(s.status).toBe('stopped');
    expect(s.error).toBeNull();
  });

  it('warnings are logged; tokens are ignored', () => {
    const before = started();
    expect(reduce(before, { type: 'token', text: 'x' })).toBe(before);
    const s = reduce(before, { type: 'log', level: 'warn', message: 'notes.pdf skipped' });
    expect(s.logs).toEqual([{ level: 'warn', message: 'notes.pdf skipped' }]);
  });

  it('never mutates the previous state', () => {
    const before = started();
    const frozen = JSON.stringify(before);
    fold([step(1, 9), { type: 'eval', step: 1, valLoss: 9, perplexity: 1 }, { type: 'sample', step: 1, text: 'a' }], before);
    expect(JSON.stringify(before)).toBe(frozen);
  });
});

describe('appendPoint', () => {
  it('keeps steps strictly increasing when a resumed run replays steps', () => {
    const pts = [10, 20, 30, 40].map((step) => ({ step, value: step }));
    expect(appendPoint(pts, { step: 30, value: 99 }).map((p) => [p.step, p.value])).toEqual([
      [10, 10],
      [20, 20],
      [30, 99],
    ]);
  });
});

describe('chartData', () => {
  it('aligns sparse validation points with training steps, null where missing', () => {
    const s = fold([step(10, 5), step(20, 4.5), { type: 'eval', step: 20, valLoss: 4.8, perplexity: 1 }, step(30, 4), { type: 'eval', step: 35, valLoss: 4.4, perplexity: 1 }]);
    expect(chartData(s)).toEqual([
      [10, 20, 30, 35],
      [5, 4.5, 4, null],
      [null, 4.8, null, 4.4],
    ]);
  });

  it('is empty for a new job', () => {
    expect(chartData(initialTraining())).toEqual([[], [], []]);
  });
});

describe('fromMetrics', () => {
  it('rebuilds a saved run as if its events were replayed', () => {
    const s = fromMetrics(
      {
        steps: [{ step: 10, loss: 5 }, { step: 20, loss: 4 }],
        evals: [{ step: 20, valLoss: 4.4 }],
        samples: [{ step: 10, text: 'old' }, { step: 20, text: 'new' }],
        findings: [],
      },
      200,
    );
    expect(s.step).toBe(20);
    expect(s.total).toBe(200);
    expect(s.bestValLoss).toBe(4.4);
    expect(s.samples[0].text).toBe('new');
    expect(chartData(s)[0]).toEqual([10, 20]);
  });
});

describe('doctor findings', () => {
  it('are kept one per kind, the newest message winning, and come back from saved metrics', () => {
    let s = initialTraining();
    s = reduce(s, { type: 'finding', kind: 'stalled', step: 60, message: 'No progress', remedy: null });
    s = reduce(s, { type: 'finding', kind: 'stalled', step: 80, message: 'Still no progress', remedy: null });
    s = reduce(s, { type: 'finding', kind: 'tooLittleData', step: 0, message: 'Too little text', remedy: { action: 'fewerSteps', steps: 16, epochs: 5 } });
    expect(s.findings.map((f) => [f.kind, f.step])).toEqual([['stalled', 80], ['tooLittleData', 0]]);
    const back = fromMetrics({ steps: [], evals: [], samples: [], findings: s.findings });
    expect(back.findings).toEqual(s.findings);
  });
});
