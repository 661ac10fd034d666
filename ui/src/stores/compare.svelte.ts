// "Compare": one prompt answered by a base model and by the tuned run, side by side. The two run
// one after the other because the backend runs one heavy job at a time.
import { toCommandError } from '../ipc/errors';
import type { CommandError } from '../ipc/types';
import { cleanReply, cutAtStop, randomSeed, toGenerateConfig, type ChatSettings } from './chat';
import { startGeneration, type RunningGeneration } from './generation';

export type Side = 'tuned' | 'base';

export class Compare {
  prompt = $state('');
  baseSource = $state('gpt2');
  /** Wrap the prompt as a one-turn chat, for runs trained on dialogue. */
  asChat = $state(false);
  results = $state<Record<Side, string>>({ tuned: '', base: '' });
  errors = $state<Record<Side, CommandError | null>>({ tuned: null, base: null });
  /** The side generating now, or null. */
  running = $state<Side | null>(null);
  #job: RunningGeneration | null = null;
  #stopped = false;

  async run(tunedModel: string, settings: ChatSettings) {
    if (this.running || !this.prompt.trim()) return;
    const mode = this.asChat ? 'chat' : 'complete';
    // As a chat, each model gets the question in its own chat template (or the plain transcript).
    const asked = [{ role: 'user' as const, content: this.prompt }];
    // The same seed on both sides, so the difference is the model, not the dice.
    const config = toGenerateConfig(mode, asked, { ...settings, n: 1 }, randomSeed());
    this.results = { tuned: '', base: '' };
    this.errors = { tuned: null, base: null };
    this.#stopped = false;
    for (const [side, model] of [['tuned', tunedModel], ['base', this.baseSource]] as const) {
      if (this.#stopped) break;
      this.running = side;
      this.#job = startGeneration(model, config, {
        onText: (text) => (this.results[side] = cleanReply(text, mode)),
      });
      try {
        const [first] = await this.#job.done;
        if (first) this.results[side] = cleanReply(cutAtStop(first.text, config.stop).text, mode);
      } catch (e) {
        const err = toCommandError(e);
        if (err.kind !== 'cancelled') this.errors[side] = err;
      }
    }
    this.#job = null;
    this.running = null;
  }

  async stop() {
    this.#stopped = true;
    await this.#job?.stop().catch(() => {});
  }
}

export const compare = new Compare();
