import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { beforeEach, describe, expect, it } from 'vitest';
import { deferred, fakeBackend, flush, send } from '../test/backend';
import { runSummary } from '../test/fixtures';
import type { Generation } from '../ipc/types';
import { DEFAULT_SETTINGS } from '../stores/chat';
import { loadPrefs } from '../stores/chatPrefs';
import { chatSession } from '../stores/chatSession.svelte';
import ChatView from './ChatView.svelte';

beforeEach(() => {
  chatSession.target = null;
  chatSession.chats = [];
  chatSession.currentId = null;
  chatSession.settings = { ...DEFAULT_SETTINGS, stop: [] };
  chatSession.plainText = false;
  chatSession.lastPrompt = null;
  localStorage.clear();
});

/** Renders the page on one trained run whose replies the test holds open and streams. */
async function streaming() {
  let channel: unknown;
  let done = deferred<Generation[]>();
  fakeBackend({
    list_runs: () => [runSummary({ name: 'notes', path: '/runs/notes' })],
    list_chats: () => [],
    save_chat: () => null,
    generate: ({ onEvent }) => ((channel = onEvent), (done = deferred<Generation[]>()), done.promise),
  });
  render(ChatView);
  const input = (await screen.findByTestId('chat-input')) as HTMLTextAreaElement;
  return {
    async ask(text: string) {
      await fireEvent.input(input, { target: { value: text } });
      await fireEvent.click(screen.getByTestId('chat-send'));
      await flush();
    },
    async stream(text: string) {
      send(channel, [{ type: 'token', text }]);
      await flush();
    },
    async finish(text: string) {
      done.resolve([{ text, tokens: [], prompt: '', prompt_ids: [], finish_reason: 'stop' }]);
      await waitFor(() => expect(screen.getByTestId('chat-send')).toBeTruthy());
    },
  };
}

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

    done.resolve([{ text: ' Refunds take **30 days**.', tokens: [], prompt: '', prompt_ids: [], finish_reason: 'stop' }]);
    await waitFor(() => expect(screen.getByTestId('chat-send')).toBeTruthy());
    expect(b.last('save_chat')).toMatchObject({ runPath: '/runs/notes' });
    expect(input.value).toBe('');
  });

  it('shows the prompt the model was given, as plain text', async () => {
    const prompt = '<|im_start|>user\nhi <img src=x onerror="alert(1)"><|im_end|>\n<|im_start|>assistant\n';
    fakeBackend({
      list_runs: () => [runSummary()],
      list_chats: () => [],
      save_chat: () => null,
      generate: () => [{ text: 'Hello.', tokens: [], prompt, prompt_ids: [], finish_reason: 'stop' }],
    });
    render(ChatView);
    expect(screen.queryByTestId('chat-show-prompt')).toBeNull();
    const input = await screen.findByTestId('chat-input');
    await fireEvent.input(input, { target: { value: 'hi' } });
    await fireEvent.click(screen.getByTestId('chat-send'));
    const shown = await screen.findByTestId('chat-show-prompt');
    expect(shown.querySelector('pre')?.textContent).toBe(prompt);
    expect(shown.querySelector('img')).toBeNull();
  });

  it('model output cannot inject script', async () => {
    fakeBackend({
      list_runs: () => [runSummary()],
      list_chats: () => [],
      save_chat: () => null,
      generate: () => [{ text: 'hi <img src=x onerror="alert(1)"><script>alert(2)</script>', tokens: [], prompt: '', prompt_ids: [], finish_reason: 'stop' }],
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

  it('streamed text is not live; the end of each reply is announced once', async () => {
    const chat = await streaming();
    const announcer = screen.getByTestId('chat-announcer');
    expect(announcer.getAttribute('role')).toBe('status');
    const transcript = screen.getByTestId('chat-transcript');
    // Nothing that grows token by token may sit inside a live region.
    expect(transcript.closest('[aria-live], [role="status"], [role="log"], [role="alert"]')).toBeNull();
    expect(transcript.querySelector('[aria-live], [role="status"], [role="log"], [role="alert"]')).toBeNull();

    await chat.ask('Hello');
    await chat.stream(' Hi');
    await chat.stream(' there');
    expect(announcer.textContent).toBe('');
    await chat.finish(' Hi there');
    expect(announcer.textContent).toBe('Reply finished.');

    await chat.ask('Again');
    expect(announcer.textContent).toBe('');
    await chat.finish(' Once more');
    expect(announcer.textContent).toBe('Reply finished.');
  });

  it('plain text shows the reply as written, and is remembered', async () => {
    const chat = await streaming();
    await chat.ask('Start a story');
    await chat.finish('# Chapter one\n\nIt was *dark*.');
    const reply = screen.getByTestId('chat-assistant-message');
    expect(reply.querySelector('h1')?.textContent).toBe('Chapter one');

    await fireEvent.click(screen.getByTestId('chat-plain-text'));
    expect(reply.querySelector('h1, em')).toBeNull();
    expect(reply.textContent).toContain('# Chapter one\n\nIt was *dark*.');
    await flush();
    expect(loadPrefs().plainText).toBe(true);
  });

  it('a reply is checked for text copied from the training set, highlighted as text', async () => {
    const chat = await streaming();
    await chat.ask('What is the policy?');
    await chat.finish('Refunds <b>must</b> be approved by the billing team within two business days.');
    const reply = screen.getByTestId('chat-assistant-message');
    const b = fakeBackend({
      list_runs: () => [runSummary({ name: 'notes', path: '/runs/notes' })],
      list_chats: () => [],
      save_chat: () => null,
      check_copied: () => ({
        share: 0.6,
        minTokens: 12,
        tokens: 20,
        segments: [
          { text: 'Refunds <b>must</b> ', copied: false },
          { text: 'be approved by the billing team within two business days.', copied: true },
        ],
      }),
    });
    await fireEvent.click(screen.getByTestId('chat-check-copied'));
    await flush();
    expect(b.last('check_copied')).toMatchObject({ runPath: '/runs/notes' });
    expect(screen.getByTestId('chat-copied-note').textContent).toContain('60 % of this reply is copied');
    const marked = reply.querySelectorAll('mark');
    expect([...marked].map((m) => m.textContent)).toEqual(['be approved by the billing team within two business days.']);
    expect(reply.querySelector('b')).toBeNull();
    expect(screen.getByTestId('chat-copied-text').textContent).toContain('Refunds <b>must</b>');
  });

  it('settings edited on the page are saved for the next launch', async () => {
    await streaming();
    const temperature = screen.getByRole('spinbutton', { name: 'Temperature' });
    await fireEvent.input(temperature, { target: { value: '0.35' } });
    await flush();
    expect(loadPrefs().settings.temperature).toBe(0.35);
  });

  it('each setting is named by its label and described by its help', async () => {
    await streaming();
    expect(screen.getByRole('spinbutton', { name: 'Temperature', description: /How adventurous the wording is/ })).toBeTruthy();
    expect(screen.getByRole('spinbutton', { name: 'Top-k', description: /likeliest next words/ })).toBeTruthy();
    expect(screen.getByRole('spinbutton', { name: 'Max tokens', description: /longest reply/ })).toBeTruthy();
    expect(screen.getByRole('textbox', { name: 'Stop at', description: /Type \\n for a line break/ })).toBeTruthy();
  });
});
