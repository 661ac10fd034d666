import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { beforeEach, describe, expect, it } from 'vitest';
import { deferred, fakeBackend, flush, send } from '../test/backend';
import { runSummary } from '../test/fixtures';
import type { Generation } from '../ipc/types';
import { chatSession } from '../stores/chatSession.svelte';
import ChatView from './ChatView.svelte';

beforeEach(() => {
  chatSession.target = null;
  chatSession.chats = [];
  chatSession.currentId = null;
});

describe('ChatView', () => {
  it('streams the reply of the newest trained run into the transcript, rendered as Markdown', async () => {
    let channel: unknown;
    const done = deferred<Generation[]>();
    const b = fakeBackend({
      list_runs: () => [runSummary({ name: 'notes', path: '/runs/notes' })],
      list_chats: () => [],
      save_chat: () => null,
      generate: ({ onEvent }) => ((channel = onEvent), done.promise),
    });
    render(ChatView);
    await waitFor(() => expect(b.last('list_chats')).toEqual({ runPath: '/runs/notes' }));

    const input = (await screen.findByTestId('chat-input')) as HTMLTextAreaElement;
    await fireEvent.input(input, { target: { value: 'What is the refund window?' } });
    await fireEvent.click(screen.getByTestId('chat-send'));
    await flush();
    expect(b.last('generate')).toMatchObject({ model: '/runs/notes' });
    expect(screen.getByTestId('chat-stop')).toBeTruthy();

    send(channel, [{ type: 'token', text: ' Refunds take' }, { type: 'token', text: ' **30 days**.' }]);
    await flush();
    const reply = screen.getByTestId('chat-assistant-message');
    expect(reply.textContent).toContain('Refunds take 30 days.');
    expect(reply.querySelector('strong')?.textContent).toBe('30 days');

    done.resolve([{ text: ' Refunds take **30 days**.', tokens: [], finish_reason: 'stop' }]);
    await waitFor(() => expect(screen.getByTestId('chat-send')).toBeTruthy());
    expect(b.last('save_chat')).toMatchObject({ runPath: '/runs/notes' });
    expect(input.value).toBe('');
  });

  it('model output cannot inject script', async () => {
    fakeBackend({
      list_runs: () => [runSummary()],
      list_chats: () => [],
      save_chat: () => null,
      generate: () => [{ text: 'hi <img src=x onerror="alert(1)"><script>alert(2)</script>', tokens: [], finish_reason: 'stop' }],
    });
    render(ChatView);
    const input = await screen.findByTestId('chat-input');
    await fireEvent.input(input, { target: { value: 'x' } });
    await fireEvent.click(screen.getByTestId('chat-send'));
    const reply = await screen.findByTestId('chat-assistant-message');
    await waitFor(() => expect(reply.textContent).toContain('hi'));
    expect(reply.querySelector('script, img, [onerror]')).toBeNull();
  });

  it('a reply the model ended at once stays, with what to do about it', async () => {
    fakeBackend({
      list_runs: () => [runSummary()],
      list_chats: () => [],
      save_chat: () => null,
      generate: () => [{ text: '   ', tokens: [220], finish_reason: 'stop' }],
    });
    render(ChatView);
    const input = await screen.findByTestId('chat-input');
    await fireEvent.input(input, { target: { value: 'hello?' } });
    await fireEvent.click(screen.getByTestId('chat-send'));
    const note = await screen.findByTestId('chat-empty-reply');
    expect(note.textContent).toContain('Regenerate');
    expect(screen.getByTestId('chat-regenerate')).toBeTruthy();
  });
});
