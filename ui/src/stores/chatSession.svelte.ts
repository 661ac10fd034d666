// The Chat page's conversations with one model: choosing the model, sending, streaming the reply
// into the last message, stopping, regenerating, and saving each finished exchange.
import { listChats, saveChat } from '../ipc/commands';
import { toCommandError } from '../ipc/errors';
import type { Chat, CommandError } from '../ipc/types';
import {
  chatTitle,
  cleanReply,
  cutAtStop,
  DEFAULT_SETTINGS,
  lastUserIndex,
  newChat,
  nowUnix,
  randomSeed,
  toGenerateConfig,
  validateSettings,
  type ChatMode,
  type ChatSettings,
} from './chat';
import { loadPrefs, savePrefs, type ChatPrefs } from './chatPrefs';
import { startGeneration, type RunningGeneration } from './generation';

/** A trained run (its latest checkpoint) or a base model: a hub id or a model folder. */
export type ChatTarget = { kind: 'run'; path: string; name: string } | { kind: 'base'; source: string; label: string };

export function targetModel(t: ChatTarget): string {
  return t.kind === 'run' ? t.path : t.source;
}

export class ChatSession {
  target = $state<ChatTarget | null>(null);
  chats = $state<Chat[]>([]);
  currentId = $state<string | null>(null);
  settings = $state<ChatSettings>({ ...DEFAULT_SETTINGS });
  /** Replies shown as the raw text the model wrote (raw continuations are not Markdown). */
  plainText = $state(false);
  streaming = $state(false);
  /** What the model is doing before the first token (e.g. "Downloading… 40%"). */
  progress = $state<string | null>(null);
  /** The prompt the model was given for the latest reply (the conversation in its template). */
  lastPrompt = $state<string | null>(null);
  error = $state<CommandError | null>(null);
  #running: RunningGeneration | null = null;

  /** Starts from the settings of the last launch. */
  constructor(prefs: ChatPrefs = loadPrefs()) {
    this.settings = prefs.settings;
    this.plainText = prefs.plainText;
  }

  /** Saves the settings for the next launch; reads them all, so an $effect calling it reruns on any change. */
  remember() {
    savePrefs({ settings: $state.snapshot(this.settings), plainText: this.plainText });
  }

  get current(): Chat | null {
    return this.chats.find((c) => c.id === this.currentId) ?? null;
  }

  /** Conversations are saved in the run's folder; base models have no folder to keep them in. */
  get saves(): boolean {
    return this.target?.kind === 'run';
  }

  async choose(target: ChatTarget) {
    if (this.streaming) return;
    this.target = target;
    this.chats = [];
    this.currentId = null;
    this.error = null;
    this.lastPrompt = null;
    if (target.kind === 'run') {
      try {
        const saved = await listChats(target.path);
        this.chats = [...saved].sort((a, b) => b.updatedUnix - a.updatedUnix);
      } catch (e) {
        this.error = toCommandError(e);
      }
    }
    if (this.chats.length > 0) this.currentId = this.chats[0].id;
    else this.newChat('chat');
  }

  newChat(mode: ChatMode) {
    if (this.streaming) return;
    const chat = newChat(mode, crypto.randomUUID(), nowUnix());
    this.chats = [chat, ...this.chats];
    this.currentId = chat.id;
    this.lastPrompt = null;
  }

  /** Switching mode restarts an empty conversation in place, or opens a new one. */
  setMode(mode: ChatMode) {
    const chat = this.current;
    if (!chat || chat.mode === mode || this.streaming) return;
    if (chat.messages.length === 0) chat.mode = mode;
    else this.newChat(mode);
  }

  async send(text: string): Promise<boolean> {
    const chat = this.current;
    if (!chat || !this.target || this.streaming || !text.trim()) return false;
    const invalid = validateSettings(this.settings);
    if (invalid) {
      this.error = { kind: 'config', message: invalid };
      return false;
    }
    chat.messages.push({ role: 'user', content: text });
    chat.title = chatTitle(chat.messages);
    await this.#reply(chat);
    return true;
  }

  /** Answers the last user message again, with a new random seed. */
  async regenerate() {
    const chat = this.current;
    if (!chat || this.streaming) return;
    const i = lastUserIndex(chat.messages);
    if (i < 0) return;
    chat.messages.splice(i + 1);
    await this.#reply(chat);
  }

  async stop() {
    try {
      await this.#running?.stop();
    } catch (e) {
      this.error = toCommandError(e);
    }
  }

  async #reply(chat: Chat) {
    const target = this.target;
    if (!target) return;
    const config = toGenerateConfig(chat.mode, $state.snapshot(chat.messages), $state.snapshot(this.settings), randomSeed());
    chat.messages.push({ role: 'assistant', content: '' });
    const at = chat.messages.length - 1;
    this.streaming = true;
    this.error = null;
    this.progress = 'Loading the model…';
    this.#running = startGeneration(targetModel(target), config, {
      onText: (text) => {
        this.progress = null;
        chat.messages[at].content = cleanReply(text, chat.mode);
      },
      onProgress: (stage, done, total) => {
        this.progress = total > 0 ? `${stage}… ${Math.round((100 * done) / total)}%` : `${stage}…`;
      },
    });
    let answered = false;
    try {
      const generations = await this.#running.done;
      // The final texts are authoritative (the stream may have been throttled); in Complete mode
      // each sample becomes its own message.
      const replies = generations.map((g) => cleanReply(cutAtStop(g.text, config.stop).text, chat.mode));
      this.lastPrompt = generations[0]?.prompt ?? null;
      if (replies.length > 0) chat.messages.splice(at, 1, ...replies.map((content) => ({ role: 'assistant' as const, content })));
      answered = true;
    } catch (e) {
      const err = toCommandError(e);
      // Stopping is not a failure: keep whatever had arrived.
      if (err.kind !== 'cancelled') this.error = err;
    } finally {
      // An empty reply that finished stays (the page explains it); one cut short by an error or
      // Stop before any text goes, so the user's message can simply be sent again.
      if (!answered && chat.messages[at]?.role === 'assistant' && chat.messages[at].content === '') chat.messages.splice(at, 1);
      this.#running = null;
      this.streaming = false;
      this.progress = null;
    }
    chat.updatedUnix = nowUnix();
    await this.#save(chat);
  }

  async #save(chat: Chat) {
    if (this.target?.kind !== 'run' || chat.messages.length === 0) return;
    try {
      await saveChat(this.target.path, $state.snapshot(chat));
    } catch (e) {
      const err = toCommandError(e);
      this.error = { kind: err.kind, message: `The conversation could not be saved: ${err.message}` };
    }
  }
}

export const chatSession = new ChatSession();
