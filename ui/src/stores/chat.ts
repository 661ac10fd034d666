// Conversation logic without any UI: the prompt template base models are chatted with, stop-string
// handling for streamed text, and the settings that become a GenerateConfig.
import type { Chat, ChatMessage, GenerateConfig, Message } from '../ipc/types';

export type ChatMode = Chat['mode'];

/** A base model has no chat format; this plain transcript is the cue it continues best. */
export const USER_PREFIX = 'User:';
export const ASSISTANT_PREFIX = 'Assistant:';
/** The model starting the next user turn means its own turn is over. */
export const CHAT_STOP = '\nUser:';

/** "User: …\nAssistant: …\n…User: <last>\nAssistant:" for a conversation ending in a user turn. */
export function formatChatPrompt(messages: ChatMessage[]): string {
  const lines = messages.map((m) => `${m.role === 'user' ? USER_PREFIX : ASSISTANT_PREFIX} ${m.content.trim()}`);
  return [...lines, ASSISTANT_PREFIX].join('\n');
}

/** Text before the earliest stop string, and whether one was found. */
export function cutAtStop(text: string, stops: string[]): { text: string; stopped: boolean } {
  let cut = -1;
  for (const s of stops) {
    if (!s) continue;
    const i = text.indexOf(s);
    if (i !== -1 && (cut === -1 || i < cut)) cut = i;
  }
  return cut === -1 ? { text, stopped: false } : { text: text.slice(0, cut), stopped: true };
}

/**
 * What to show of a text still streaming in: cut at any complete stop string, and hold back a
 * tail that could be the start of one ("\nUs" might become "\nUser:"), so it never flickers in.
 */
export function visibleText(text: string, stops: string[]): string {
  const cut = cutAtStop(text, stops);
  if (cut.stopped) return cut.text;
  let hold = 0;
  for (const s of stops) {
    for (let n = Math.min(s.length - 1, text.length); n > hold; n--) {
      if (text.endsWith(s.slice(0, n))) {
        hold = n;
        break;
      }
    }
  }
  return text.slice(0, text.length - hold);
}

/** The assistant's reply as shown and stored: no leading space the template invites. */
export function cleanReply(text: string, mode: ChatMode): string {
  return mode === 'chat' ? text.trim() : text;
}

export interface ChatSettings {
  temperature: number;
  top_k: number;
  top_p: number;
  max_new_tokens: number;
  repetition_penalty: number;
  /** The user's own stop strings, one per line in the form. */
  stop: string[];
  /** Samples per prompt in Complete mode. */
  n: number;
  /** Instructions sent before the conversation in Chat mode ('' = none). */
  system: string;
}

export const DEFAULT_SETTINGS: ChatSettings = {
  temperature: 0.8,
  top_k: 40,
  top_p: 0.95,
  max_new_tokens: 120,
  repetition_penalty: 1.1,
  stop: [],
  n: 1,
  system: '',
};

/** Stop strings for a mode: chat always ends at the next user turn. */
export function stopsFor(mode: ChatMode, settings: ChatSettings): string[] {
  const own = settings.stop.filter((s) => s.length > 0);
  return mode === 'chat' ? [CHAT_STOP, ...own.filter((s) => s !== CHAT_STOP)] : own;
}

/** The prompt for the next reply: the transcript in chat mode, the latest user text in complete mode. */
export function promptFor(mode: ChatMode, messages: ChatMessage[]): string {
  if (mode === 'chat') return formatChatPrompt(messages);
  return [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
}

/**
 * In Chat mode the conversation itself (and the system prompt) goes to the engine, which renders it
 * with the model's own chat template, or the plain transcript for a model without one.
 */
export function messagesFor(mode: ChatMode, messages: ChatMessage[], s: ChatSettings): Message[] | null {
  if (mode !== 'chat') return null;
  const system = s.system.trim() ? [{ role: 'system', content: s.system.trim() }] : [];
  return [...system, ...messages.map((m) => ({ role: m.role, content: m.content }))];
}

export function toGenerateConfig(mode: ChatMode, messages: ChatMessage[], s: ChatSettings, seed: number): GenerateConfig {
  return {
    prompt: mode === 'chat' ? '' : promptFor(mode, messages),
    messages: messagesFor(mode, messages, s),
    max_new_tokens: s.max_new_tokens,
    temperature: s.temperature,
    top_k: s.top_k,
    top_p: s.top_p,
    repetition_penalty: s.repetition_penalty,
    stop: stopsFor(mode, s),
    // Chat turns are one reply; several samples only make sense for raw continuations.
    n: mode === 'chat' ? 1 : Math.max(1, s.n),
    seed,
    stop_at_eot: true,
    // A small model often ends its turn at once; it should always say something.
    min_new_tokens: 1,
  };
}

type NumericSetting = Exclude<keyof ChatSettings, 'stop' | 'system'>;

/**
 * Each number setting's rule, mirroring the engine's GenerateConfig checks: used before sending
 * and when settings saved by an earlier launch are read back (chatPrefs.ts).
 */
export const SETTING_RULES: Record<NumericSetting, { ok: (n: number) => boolean; integer: boolean; message: string }> = {
  temperature: { ok: (n) => n >= 0, integer: false, message: 'Temperature must be 0 (always the likeliest word) or more.' },
  top_p: { ok: (n) => n > 0 && n <= 1, integer: false, message: 'Top-p must be above 0 and at most 1.' },
  repetition_penalty: { ok: (n) => n > 0, integer: false, message: 'Repetition penalty must be above 0 (1 = off).' },
  max_new_tokens: { ok: (n) => n >= 1, integer: true, message: 'Max tokens must be a whole number, at least 1.' },
  top_k: { ok: (n) => n >= 0, integer: true, message: 'Top-k must be a whole number: 0 (off) or more.' },
  n: { ok: (n) => n >= 1, integer: true, message: 'Samples must be a whole number, at least 1.' },
};

/** Whether `v` is an acceptable value for the setting. An empty number field binds as null. */
export function settingOk(key: NumericSetting, v: unknown): v is number {
  const rule = SETTING_RULES[key];
  return typeof v === 'number' && Number.isFinite(v) && (!rule.integer || Number.isInteger(v)) && rule.ok(v);
}

/** Plain checks before sending: the first broken rule, in the form's order, or null. */
export function validateSettings(s: ChatSettings): string | null {
  for (const key of Object.keys(SETTING_RULES) as NumericSetting[]) {
    if (!settingOk(key, s[key])) return SETTING_RULES[key].message;
  }
  return null;
}

export function chatTitle(messages: ChatMessage[]): string {
  const first = messages.find((m) => m.role === 'user')?.content.trim().replace(/\s+/g, ' ') ?? '';
  if (!first) return 'New conversation';
  return first.length > 40 ? `${first.slice(0, 39)}…` : first;
}

export function newChat(mode: ChatMode, id: string, nowUnix: number): Chat {
  return { id, title: 'New conversation', mode, messages: [], updatedUnix: nowUnix };
}

/** Index of the last user message, the one "Regenerate" answers again; -1 when none. */
export function lastUserIndex(messages: ChatMessage[]): number {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i].role === 'user') return i;
  return -1;
}

export function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 31);
}

export function nowUnix(): number {
  return Math.floor(Date.now() / 1000);
}
