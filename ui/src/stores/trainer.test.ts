import { describe, expect, it, vi } from 'vitest';
import { deferred, fakeBackend, flush, reject, send } from '../test/backend';
import { quickConfig, runSummary } from '../test/fixtures';
import type { JobStarted, RunSummary } from '../ipc/types';
import { Trainer } from './trainer.svelte';

const config = quickConfig({ data: ['/d/a.txt'] });

describe('Trainer', () => {
  it('folds the job’s stream into state and clears the job when it finishes', async () => {
    let channel: unknown;
    const b = fakeBackend({
      start_training: ({ onEvent }) => {
        channel = onEvent;
        return { jobId: 'j1', runPath: '/runs/demo' };
      },
    });
    const t = new Trainer();
    const ended = vi.fn();
    t.onJobEnd = ended;
    await t.start('demo', config);
    expect(b.last('start_training')).toMatchObject({ name: 'demo', config });
    expect(t.job).toEqual({ jobId: 'j1', runPath: '/runs/demo' });
    expect(t.run).toEqual({ path: '/runs/demo', name: 'demo' });
    expect(t.active).toBe(true);

    send(channel, [
      { type: 'trainStep', step: 10, total: 200, loss: 5, lr: 1e-3, tokensPerSec: 900, etaSecs: 60, epoch: 0.1 },
      { type: 'eval', step: 10, valLoss: 5.2, perplexity: 181 },
      { type: 'checkpoint', step: 10, path: '/runs/demo/checkpoints/step-10' },
    ]);
    expect(t.state.step).toBe(10);
    expect(t.state.valLoss).toHaveLength(1);
    expect(t.state.checkpoints[0].step).toBe(10);

    send(channel, [{ type: 'finished', summary: {} }]);
    expect(t.state.status).toBe('finished');
    expect(t.job).toBeNull();
    expect(t.active).toBe(false);
    expect(ended).toHaveBeenCalledOnce();
  });

  it('a busy backend refuses the start: the message is shown and the previous view restored', async () => {
    fakeBackend({
      run_metrics: () => ({ steps: [{ step: 5, loss: 4 }], evals: [], samples: [] }),
      start_training: () => Promise.reject(reject('busy', 'Another job is already running: wait for it or stop it.')),
    });
    const t = new Trainer();
    await t.open(runSummary());
    const shown = t.state;
    await t.start('again', config);
    expect(t.error).toEqual({ kind: 'busy', message: 'Another job is already running: wait for it or stop it.' });
    expect(t.state).toBe(shown);
    expect(t.run?.name).toBe('demo');
    expect(t.active).toBe(false);
  });

  it('Stop asks the backend by job id and shows "stopped" once the stream ends', async () => {
    let channel: unknown;
    const b = fakeBackend({
      start_training: ({ onEvent }) => ((channel = onEvent), { jobId: 'j9', runPath: '/runs/x' }),
      stop_job: () => null,
    });
    const t = new Trainer();
    await t.start('x', config);
    await t.stop();
    expect(b.last('stop_job')).toEqual({ jobId: 'j9' });
    expect(t.state.status).toBe('stopping');
    send(channel, [{ type: 'checkpoint', step: 40, path: '/runs/x/checkpoints/step-40' }, { type: 'finished', summary: {} }]);
    expect(t.state.status).toBe('stopped');
  });

  it('a stream that fails before the start reply arrives leaves no dangling job', async () => {
    fakeBackend({
      start_training: ({ onEvent }) => {
        send(onEvent, [{ type: 'failed', kind: 'data', message: 'a.txt: this file is empty; remove it from the list' }]);
        return { jobId: 'j1', runPath: '/runs/x' };
      },
    });
    const t = new Trainer();
    await t.start('x', config);
    expect(t.job).toBeNull();
    expect(t.state.error?.message).toMatch(/empty/);
  });

  it('resume keeps the saved history and continues the chart', async () => {
    let channel: unknown;
    const b = fakeBackend({
      run_metrics: () => ({ steps: [{ step: 10, loss: 5 }, { step: 20, loss: 4 }], evals: [], samples: [] }),
      resume_training: ({ onEvent }) => ((channel = onEvent), { jobId: 'j2', runPath: '/runs/demo' }),
    });
    const t = new Trainer();
    await t.resume({ path: '/runs/demo', name: 'demo' });
    expect(b.last('resume_training')?.runPath).toBe('/runs/demo');
    send(channel, [{ type: 'trainStep', step: 30, total: 200, loss: 3.5, lr: 1e-3, tokensPerSec: 1, etaSecs: 1, epoch: 1 }]);
    expect(t.state.loss.map((p) => p.step)).toEqual([10, 20, 30]);
  });

  it('ignores late events from an earlier job', async () => {
    const channels: unknown[] = [];
    const second = deferred<JobStarted>();
    fakeBackend({
      start_training: ({ onEvent }) => {
        channels.push(onEvent);
        return channels.length === 1 ? { jobId: 'j1', runPath: '/runs/a' } : second.promise;
      },
    });
    const t = new Trainer();
    await t.start('a', config);
    send(channels[0], [{ type: 'finished', summary: {} }]);
    const p = t.start('b', config);
    await flush();
    send(channels[0], [{ type: 'trainStep', step: 99, total: 99, loss: 1, lr: 1, tokensPerSec: 1, etaSecs: 1, epoch: 1 }]);
    expect(t.state.step).toBe(0);
    second.resolve({ jobId: 'j2', runPath: '/runs/b' });
    await p;
    expect(t.job?.jobId).toBe('j2');
  });

  it('opening a saved run shows its metrics, checkpoints and failure', async () => {
    fakeBackend({ run_metrics: () => ({ steps: [{ step: 50, loss: 3 }], evals: [{ step: 50, valLoss: 3.3 }], samples: [] }) });
    const t = new Trainer();
    await t.open(runSummary({ status: 'failed', error: 'out of memory: try a smaller batch', checkpoints: [50], totalSteps: 200, step: 50 }));
    expect(t.state.status).toBe('failed');
    expect(t.state.error?.message).toMatch(/out of memory/);
    expect(t.state.checkpoints.map((c) => c.step)).toEqual([50]);
    expect(t.state.total).toBe(200);
  });

  it('after a reload it re-attaches to the running training: history, replayed step, then live events', async () => {
    let channel: unknown;
    const b = fakeBackend({
      current_job: ({ onEvent }) => {
        channel = onEvent;
        // The backend replays the latest step before its reply arrives.
        send(onEvent, [{ type: 'trainStep', step: 30, total: 200, loss: 3.5, lr: 1e-3, tokensPerSec: 1, etaSecs: 9, epoch: 1 }]);
        return { jobId: 'j7', kind: 'train', runPath: '/runs/live', name: 'live' };
      },
      run_metrics: () => ({ steps: [{ step: 10, loss: 5 }, { step: 20, loss: 4 }], evals: [], samples: [] }),
      stop_job: () => null,
    });
    const t = new Trainer();
    await t.reattach();
    expect(b.last('current_job')?.kind).toBe('train');
    expect(b.last('run_metrics')).toEqual({ runPath: '/runs/live' });
    expect(t.run).toEqual({ path: '/runs/live', name: 'live' });
    expect(t.job).toEqual({ jobId: 'j7', runPath: '/runs/live' });
    expect(t.active).toBe(true);
    expect(t.state.loss.map((p) => p.step)).toEqual([10, 20, 30]);
    send(channel, [{ type: 'trainStep', step: 40, total: 200, loss: 3, lr: 1e-3, tokensPerSec: 1, etaSecs: 8, epoch: 1 }]);
    expect(t.state.step).toBe(40);
    await t.stop();
    expect(b.last('stop_job')).toEqual({ jobId: 'j7' });
    send(channel, [{ type: 'finished', summary: {} }]);
    expect(t.state.status).toBe('stopped');
    expect(t.job).toBeNull();
  });

  it('after a reload with nothing running, it stays idle', async () => {
    fakeBackend({ current_job: () => null });
    const t = new Trainer();
    await t.reattach();
    expect(t.active).toBe(false);
    expect(t.run).toBeNull();
  });

  it('opening a saved run shows the status the engine decided, in the Train page’s terms', async () => {
    fakeBackend({ run_metrics: () => ({ steps: [], evals: [], samples: [] }) });
    const t = new Trainer();
    const shown = async (status: RunSummary['status']) => (await t.open(runSummary({ status })), t.state.status);
    expect(await shown('completed')).toBe('finished');
    expect(await shown('failed')).toBe('failed');
    expect(await shown('stopped')).toBe('stopped');
    expect(await shown('interrupted')).toBe('stopped');
    expect(await shown('running')).toBe('stopped'); // trained elsewhere: no live stream here
  });
});
