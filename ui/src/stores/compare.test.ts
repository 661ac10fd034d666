import { describe, expect, it } from 'vitest';
import { deferred, fakeBackend, flush, send } from '../test/backend';
import type { GenerateConfig, Generation } from '../ipc/types';
import { CHAT_STOP, DEFAULT_SETTINGS } from './chat';
import { Compare } from './compare.svelte';

describe('Compare', () => {
  it('asks the tuned run, then the base model, with the same prompt and seed', async () => {
    const b = fakeBackend({
      generate: ({ model }) => [{ text: model === '/runs/notes' ? ' within 30 days.' : ' is a matter of policy.', tokens: [], prompt: '', prompt_ids: [], finish_reason: 'stop' }],
    });
    const c = new Compare();
    c.prompt = 'The refund window';
    c.baseSource = 'distilgpt2';
    await c.run('/runs/notes', { ...DEFAULT_SETTINGS, n: 4 });
    const calls = b.calls.filter((x) => x.cmd === 'generate');
    expect(calls.map((x) => x.args.model)).toEqual(['/runs/notes', 'distilgpt2']);
    const [tuned, base] = calls.map((x) => x.args.config as GenerateConfig);
    expect(tuned).toEqual(base);
    expect(tuned).toMatchObject({ prompt: 'The refund window', n: 1 });
    expect(c.results).toEqual({ tuned: ' within 30 days.', base: ' is a matter of policy.' });
    expect(c.running).toBeNull();
  });

  it('can wrap the prompt as one chat turn', async () => {
    const b = fakeBackend({ generate: () => [{ text: ' Hello.\nUser: hi', tokens: [], prompt: '', prompt_ids: [], finish_reason: 'stop' }] });
    const c = new Compare();
    c.prompt = 'Hi';
    c.asChat = true;
    await c.run('/runs/notes', DEFAULT_SETTINGS);
    const config = b.last('generate')!.config as GenerateConfig;
    expect(config.messages).toEqual([{ role: 'user', content: 'Hi' }]);
    expect(config.stop).toContain(CHAT_STOP);
    expect(c.results.base).toBe('Hello.');
  });

  it('Stop ends the current side and skips the other', async () => {
    let channel: unknown;
    const first = deferred<Generation[]>();
    const b = fakeBackend({ generate: ({ onEvent }) => ((channel = onEvent), first.promise), stop_job: () => null });
    const c = new Compare();
    c.prompt = 'Once';
    const running = c.run('/runs/notes', DEFAULT_SETTINGS);
    await flush();
    send(channel, [{ type: 'token', text: ' upon' }]);
    expect(c.results.tuned).toBe(' upon');
    expect(c.running).toBe('tuned');
    await c.stop();
    first.resolve([{ text: ' upon', tokens: [], prompt: '', prompt_ids: [], finish_reason: 'cancelled' }]);
    await running;
    expect(b.calls.filter((x) => x.cmd === 'generate')).toHaveLength(1);
    expect(c.running).toBeNull();
  });
});
