import { describe, expect, it } from 'vitest';
import { CHAT_STOP, chatTitle, cutAtStop, DEFAULT_SETTINGS, formatChatPrompt, lastUserIndex, promptFor, stopsFor, toGenerateConfig, validateSettings, visibleText } from './chat';

describe('chat template', () => {
  it('formats a conversation as a User/Assistant transcript ending with the assistant cue', () => {
    const prompt = formatChatPrompt([
      { role: 'user', content: 'Hi there ' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'Can I get a refund?' },
    ]);
    expect(prompt).toBe('User: Hi there\nAssistant: Hello!\nUser: Can I get a refund?\nAssistant:');
  });

  it('chat mode always stops at the next user turn; complete mode only at the user’s stops', () => {
    const s = { ...DEFAULT_SETTINGS, stop: ['###', ''] };
    expect(stopsFor('chat', s)).toEqual([CHAT_STOP, '###']);
    expect(stopsFor('complete', s)).toEqual(['###']);
    expect(stopsFor('chat', { ...s, stop: [CHAT_STOP] })).toEqual([CHAT_STOP]);
  });

  it('complete mode sends the raw latest text; chat mode the transcript', () => {
    const msgs = [
      { role: 'user' as const, content: 'Once upon' },
      { role: 'assistant' as const, content: ' a time' },
      { role: 'user' as const, content: 'The refund policy' },
    ];
    expect(promptFor('complete', msgs)).toBe('The refund policy');
    expect(promptFor('chat', msgs).endsWith('User: The refund policy\nAssistant:')).toBe(true);
  });

  it('builds a GenerateConfig: one reply per chat turn, n samples when completing', () => {
    const s = { ...DEFAULT_SETTINGS, n: 3, temperature: 0.5 };
    const asked = [{ role: 'user' as const, content: 'p' }];
    const chat = toGenerateConfig('chat', asked, s, 7);
    expect(chat).toMatchObject({ prompt: '', messages: [{ role: 'user', content: 'p' }], n: 1, temperature: 0.5, seed: 7, stop: [CHAT_STOP], stop_at_eot: true, min_new_tokens: 1 });
    expect(toGenerateConfig('complete', asked, s, 7)).toMatchObject({ prompt: 'p', messages: null, n: 3 });
    // The system prompt leads the conversation when set.
    expect(toGenerateConfig('chat', asked, { ...s, system: ' Be brief. ' }, 7).messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'p' },
    ]);
  });
});

describe('stop handling', () => {
  it('cuts before the earliest stop string', () => {
    expect(cutAtStop(' Sure.\nUser: and then', [CHAT_STOP])).toEqual({ text: ' Sure.', stopped: true });
    expect(cutAtStop('a ### b END c', ['END', '###'])).toEqual({ text: 'a ', stopped: true });
    expect(cutAtStop('no stop here', [CHAT_STOP])).toEqual({ text: 'no stop here', stopped: false });
  });

  it('holds back a streamed tail that may become a stop string', () => {
    expect(visibleText(' Sure.\nUs', [CHAT_STOP])).toBe(' Sure.');
    expect(visibleText(' Sure.\n', [CHAT_STOP])).toBe(' Sure.');
    expect(visibleText(' Sure. Use', [CHAT_STOP])).toBe(' Sure. Use');
    expect(visibleText(' Sure.\nUser: x', [CHAT_STOP])).toBe(' Sure.');
  });
});

describe('helpers', () => {
  it('titles a chat by its first user message', () => {
    expect(chatTitle([])).toBe('New conversation');
    expect(chatTitle([{ role: 'user', content: '  What is\n the  refund window?' }])).toBe('What is the refund window?');
    expect(chatTitle([{ role: 'user', content: 'x'.repeat(60) }])).toHaveLength(40);
  });

  it('finds the message Regenerate answers', () => {
    expect(lastUserIndex([{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }])).toBe(0);
    expect(lastUserIndex([])).toBe(-1);
  });

  it('mirrors the engine’s sampling checks', () => {
    expect(validateSettings(DEFAULT_SETTINGS)).toBeNull();
    expect(validateSettings({ ...DEFAULT_SETTINGS, temperature: -1 })).toMatch(/Temperature/);
    expect(validateSettings({ ...DEFAULT_SETTINGS, top_p: 0 })).toMatch(/Top-p/);
    expect(validateSettings({ ...DEFAULT_SETTINGS, top_p: 1.1 })).toMatch(/Top-p/);
    expect(validateSettings({ ...DEFAULT_SETTINGS, repetition_penalty: 0 })).toMatch(/Repetition/);
    expect(validateSettings({ ...DEFAULT_SETTINGS, max_new_tokens: 0 })).toMatch(/Max tokens/);
    expect(validateSettings({ ...DEFAULT_SETTINGS, n: 0 })).toMatch(/Samples/);
    // Whole-number fields reach Rust as integers: a fraction would fail there with a parse error.
    expect(validateSettings({ ...DEFAULT_SETTINGS, max_new_tokens: 1.5 })).toMatch(/Max tokens must be a whole number/);
    expect(validateSettings({ ...DEFAULT_SETTINGS, top_k: 2.5 })).toMatch(/Top-k must be a whole number/);
    // An emptied number field binds as null; infinity is not a temperature the engine accepts.
    expect(validateSettings({ ...DEFAULT_SETTINGS, temperature: null as unknown as number })).toMatch(/Temperature/);
    expect(validateSettings({ ...DEFAULT_SETTINGS, temperature: Infinity })).toMatch(/Temperature/);
  });
});
