import { describe, expect, it } from 'vitest';
import { deferred, fakeBackend, flush, reject, send } from '../test/backend';
import { Downloads } from './downloads.svelte';

describe('Downloads', () => {
  it('a download is a job: progress shows, Stop reaches it by id, and a stopped one leaves no entry', async () => {
    const answer = deferred<string>();
    let channel: unknown;
    const b = fakeBackend({
      download_model: ({ onEvent }) => ((channel = onEvent), answer.promise),
      stop_job: () => null,
    });
    const d = new Downloads();
    const running = d.start('gpt2');
    await flush();
    send(channel, [{ type: 'progress', stage: 'download model.safetensors', done: 5, total: 10, unit: 'bytes' }]);
    expect(d.byId.gpt2).toMatchObject({ status: 'downloading', done: 5, total: 10 });
    const jobId = b.last('download_model')?.jobId;
    expect(typeof jobId).toBe('string');
    await d.stop('gpt2');
    expect(b.last('stop_job')).toEqual({ jobId });
    answer.reject(reject('cancelled', 'stopped by the user'));
    await running;
    expect(d.byId.gpt2).toBeUndefined();
  });

  it('a failed download keeps its plain message', async () => {
    fakeBackend({ download_model: () => Promise.reject(reject('hub', 'The hub cannot be reached.')) });
    const d = new Downloads();
    await d.start('gpt2');
    expect(d.byId.gpt2).toMatchObject({ status: 'failed', error: { kind: 'hub', message: 'The hub cannot be reached.' } });
  });
});
