import { describe, expect, it } from 'vitest';
import { deferred, fakeBackend, flush, reject, send } from '../test/backend';
import type { FinishReason, GenerateConfig, Generation } from '../ipc/types';
import { CHAT_STOP } from './chat';
import { ChatSession } from './chatSession.svelte';

const run = { kind: 'run' as const, path: '/runs/demo', name: 'demo' };
const gen = (text: string, finish_reason: FinishReason = 'stop'): Generation => ({ text, tokens: [], prompt: '', prompt_ids: [], finish_reason });

async function session(handlers: Parameters<typeof fakeBackend>[0]) {
  const b = fakeBackend({ list_chats: () => [], save_chat: () => null, ...handlers });
  const s = new ChatSession();
  await s.choose(run);
  return { b, s };
}

describe('ChatSession', () => {
  it('streams tokens into the assistant message as they arrive, then stores the final text', async () => {
    let channel: unknown;
    const done = deferred<Generation[]>();
    const { b, s } = await session({ generate: ({ onEvent }) => ((channel = onEvent), done.promise) });
    const sending = s.send('Can I get a refund?');
    await flush();
    const msgs = () => s.current!.messages;
    expect(msgs().map((m) => m.role)).toEqual(['user', 'assistant']);
    expect(s.streaming).toBe(true);

    send(channel, [{ type: 'token', text: ' Yes' }]);
    expect(msgs()[1].content).toBe('Yes');
    send(channel, [{ type: 'token', text: ', within 30 days.' }, { type: 'token', text: '\nUs' }]);
    // "\nUs" could be the start of the next user turn: held back, never shown.
    expect(msgs()[1].content).toBe('Yes, within 30 days.');

    done.resolve([gen(' Yes, within 30 days.')]);
    await sending;
    expect(msgs()[1].content).toBe('Yes, within 30 days.');
    expect(s.streaming).toBe(false);

    const config = b.last('generate')!.config as GenerateConfig;
    expect(b.last('generate')!.model).toBe('/runs/demo');
    // The conversation goes to the engine, which renders it in the model's own chat format.
    expect(config.prompt).toBe('');
    expect(config.messages).toEqual([{ role: 'user', content: 'Can I get a refund?' }]);
    expect(config.stop).toContain(CHAT_STOP);
    expect(b.last('save_chat')).toMatchObject({ runPath: '/runs/demo', chat: { title: 'Can I get a refund?', messages: msgs() } });
  });

  it('cuts a final text at the chat stop string if the engine returned one', async () => {
    const { s } = await session({ generate: () => [gen(' Sure.\nUser: and me?')] });
    await s.send('hello');
    expect(s.current!.messages[1].content).toBe('Sure.');
  });

  it('sends the whole conversation on the second turn', async () => {
    const { b, s } = await session({ generate: () => [gen(' Hello!')] });
    await s.send('Hi');
    await s.send('Refunds?');
    expect((b.last('generate')!.config as GenerateConfig).messages).toEqual([
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'Refunds?' },
    ]);
  });

  it('sends the system prompt first and keeps the prompt the model was given', async () => {
    const { b, s } = await session({ generate: () => [{ ...gen(' Oui.'), prompt: '<|im_start|>system\nRéponds en français.<|im_end|>…' }] });
    s.settings.system = 'Réponds en français.';
    await s.send('Hi');
    expect((b.last('generate')!.config as GenerateConfig).messages).toEqual([
      { role: 'system', content: 'Réponds en français.' },
      { role: 'user', content: 'Hi' },
    ]);
    expect(s.lastPrompt).toMatch(/^<\|im_start\|>system/);
  });

  it('a refused generation shows its message and leaves no empty reply behind', async () => {
    const { s } = await session({ generate: () => Promise.reject(reject('busy', 'Training is running; chat when it finishes.')) });
    await s.send('hi');
    expect(s.error).toEqual({ kind: 'busy', message: 'Training is running; chat when it finishes.' });
    expect(s.current!.messages.map((m) => m.role)).toEqual(['user']);
  });

  it('Stop asks the backend to stop this generation and keeps what arrived', async () => {
    let channel: unknown;
    const done = deferred<Generation[]>();
    const { b, s } = await session({ generate: ({ onEvent }) => ((channel = onEvent), done.promise), stop_job: () => null });
    const sending = s.send('Tell me a story');
    await flush();
    send(channel, [{ type: 'token', text: ' Once upon' }]);
    await s.stop();
    expect(b.last('stop_job')).toEqual({ jobId: b.last('generate')!.jobId });
    done.reject(reject('cancelled', 'stopped by the user'));
    await sending;
    expect(s.error).toBeNull();
    expect(s.current!.messages[1].content).toBe('Once upon');
  });

  it('Complete mode sends the raw text and keeps each sample', async () => {
    const { b, s } = await session({ generate: () => [gen(' a time'), gen(' the hill')] });
    s.setMode('complete');
    s.settings.n = 2;
    await s.send('Once upon');
    const config = b.last('generate')!.config as GenerateConfig;
    expect(config).toMatchObject({ prompt: 'Once upon', n: 2, stop: [] });
    expect(s.current!.messages).toEqual([
      { role: 'user', content: 'Once upon' },
      { role: 'assistant', content: ' a time' },
      { role: 'assistant', content: ' the hill' },
    ]);
  });

  it('Regenerate replaces the last answer with a new one from a new seed', async () => {
    const replies = [[gen(' First')], [gen(' Second')]];
    const { b, s } = await session({ generate: () => replies.shift() });
    await s.send('Hi');
    const firstSeed = (b.last('generate')!.config as GenerateConfig).seed;
    await s.regenerate();
    expect(s.current!.messages.map((m) => m.content)).toEqual(['Hi', 'Second']);
    const calls = b.calls.filter((c) => c.cmd === 'generate');
    expect(calls).toHaveLength(2);
    expect((calls[1].args.config as GenerateConfig).messages).toEqual([{ role: 'user', content: 'Hi' }]);
    expect(typeof firstSeed).toBe('number');
  });

  it('loads saved conversations of a run, newest first', async () => {
    fakeBackend({
      list_chats: ({ runPath }) =>
        runPath === '/runs/demo'
          ? [
              { id: 'old', title: 'Old', mode: 'chat', messages: [], updatedUnix: 1 },
              { id: 'new', title: 'New', mode: 'complete', messages: [{ role: 'user', content: 'x' }], updatedUnix: 2 },
            ]
          : [],
    });
    const s = new ChatSession();
    await s.choose(run);
    expect(s.chats.map((c) => c.id)).toEqual(['new', 'old']);
    expect(s.current?.id).toBe('new');
  });

  it('base models chat without saving', async () => {
    const b = fakeBackend({ generate: () => [gen(' ok')] });
    const s = new ChatSession();
    await s.choose({ kind: 'base', source: 'gpt2', label: 'GPT-2' });
    await s.send('hi');
    expect(b.last('generate')!.model).toBe('gpt2');
    expect(b.calls.map((c) => c.cmd)).toEqual(['generate']);
  });

  it('invalid settings are explained instead of sent', async () => {
    const { b, s } = await session({ generate: () => [] });
    s.settings.top_p = 0;
    expect(await s.send('hi')).toBe(false);
    expect(s.error?.message).toMatch(/Top-p/);
    expect(b.calls.some((c) => c.cmd === 'generate')).toBe(false);
  });
});
