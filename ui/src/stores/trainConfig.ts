// Training settings: the presets offered to beginners, a plain-language description of every
// field (drives the Advanced form and its tooltips), and the engine's validation rules mirrored
// for instant feedback. The engine re-checks everything; these messages only save a round trip.
import type { Preset } from '../ipc/commands';
import type { Report, TrainConfig } from '../ipc/types';

/** Suggested lengths per preset from the health check (the engine decides them from the data). */
export type Suggestions = Report['suggestions'];

export const PRESETS: { id: Preset; label: string; blurb: string }[] = [
  { id: 'quick', label: 'Quick', blurb: 'A few minutes. Good for trying things out; the model learns the basics of your text.' },
  { id: 'balanced', label: 'Balanced', blurb: 'Longer training; the model picks up more of your wording and style.' },
  { id: 'thorough', label: 'Thorough', blurb: 'The longest and most careful run. Best results; can take hours on a laptop.' },
];

/** A preset's training length once fitted to the data; `capped` when the data asked for fewer steps. */
export interface PresetLength {
  steps: number | null;
  capped: boolean;
}

export function suggestedSteps(s: Suggestions, preset: Preset): number {
  return { quick: s.quick_steps, balanced: s.balanced_steps, thorough: s.thorough_steps }[preset];
}

/**
 * A preset never trains longer than the data supports: on small data more steps only memorise it,
 * so the preset's steps are capped at the health check's suggestion for that preset. Without a
 * report (no files yet) or for an epoch-based preset the preset stands as it is.
 */
export function fitSteps(presetSteps: number | null, suggested: number | null): PresetLength {
  if (presetSteps === null || suggested === null || suggested >= presetSteps) return { steps: presetSteps, capped: false };
  return { steps: Math.max(1, suggested), capped: true };
}

/** "Quick: 141 steps (your data is small)", "Balanced: 1,000 steps", or just "Quick" before it loads. */
export function presetTitle(label: string, length: PresetLength | null): string {
  if (!length || length.steps === null) return label;
  const steps = `${length.steps.toLocaleString('en-US')} step${length.steps === 1 ? '' : 's'}`;
  return `${label}: ${steps}${length.capped ? ' (your data is small)' : ''}`;
}

/** Settings that are not plain numbers are edited elsewhere (model on the Model page, data on Data). */
export type FieldKey = Exclude<keyof TrainConfig, 'model' | 'data'>;

export interface FieldSpec {
  key: FieldKey;
  label: string;
  help: string;
  /** `optional` numbers may be left empty (null): the engine then chooses. */
  kind: 'int' | 'float' | 'optionalInt' | 'optionalFloat' | 'bool' | 'lora';
  step?: number;
  group: 'Length' | 'Learning' | 'Text windows' | 'Checking progress' | 'Saving' | 'Model';
}

export const FIELDS: FieldSpec[] = [
  { key: 'steps', label: 'Steps', kind: 'optionalInt', group: 'Length', help: 'How many learning steps to take. More steps = longer training and usually a better model. Leave empty to use epochs instead.' },
  { key: 'epochs', label: 'Epochs', kind: 'optionalFloat', step: 0.1, group: 'Length', help: 'How many times to read through all your text. Use this or Steps, not both.' },
  { key: 'lr', label: 'Learning rate', kind: 'float', step: 0.0001, group: 'Learning', help: 'How big each learning step is. Too high and training goes haywire; too low and it learns slowly. 0.0003 is a safe choice.' },
  { key: 'min_lr_ratio', label: 'Final learning-rate fraction', kind: 'float', step: 0.05, group: 'Learning', help: 'The learning rate slowly shrinks to this fraction of its starting value by the end (0 to 1).' },
  { key: 'warmup', label: 'Warm-up steps', kind: 'int', group: 'Learning', help: 'Steps at the start during which the learning rate ramps up gently, so early training stays stable.' },
  { key: 'batch_size', label: 'Batch size', kind: 'int', group: 'Learning', help: 'How many pieces of text the model looks at per step. Bigger is smoother but needs more memory.' },
  { key: 'grad_accum', label: 'Gradient accumulation', kind: 'int', group: 'Learning', help: 'Adds up several batches before each step: a bigger effective batch without more memory. 1 = off.' },
  { key: 'weight_decay', label: 'Weight decay', kind: 'float', step: 0.01, group: 'Learning', help: 'Gently pulls the model\'s numbers towards zero so it memorises less. 0.1 is typical; 0 turns it off.' },
  { key: 'clip', label: 'Gradient clipping', kind: 'float', step: 0.1, group: 'Learning', help: 'Caps how far one step can move the model, preventing sudden jumps. 1 is typical; 0 turns it off.' },
  { key: 'beta1', label: 'Adam beta 1', kind: 'float', step: 0.01, group: 'Learning', help: 'How much the optimiser smooths its direction over recent steps (0 to below 1). Rarely needs changing.' },
  { key: 'beta2', label: 'Adam beta 2', kind: 'float', step: 0.001, group: 'Learning', help: 'How much the optimiser smooths its step sizes (0 to below 1). Rarely needs changing.' },
  { key: 'recompute_activations', label: 'Save memory', kind: 'bool', group: 'Learning', help: 'Keeps less in memory while learning and works the rest out again when it is needed: the same model, in a fraction of the memory, about a third slower. Turned on for you when the chosen model would not fit this computer otherwise.' },
  { key: 'dropout', label: 'Dropout', kind: 'optionalFloat', step: 0.05, group: 'Learning', help: 'Randomly ignores a fraction of the model while learning so it memorises less. Leave empty to keep the model\'s own setting; 0.1 helps with small data.' },
  { key: 'block_size', label: 'Context length (tokens)', kind: 'int', group: 'Text windows', help: 'How many tokens (word pieces) the model reads at once. Longer remembers more but is slower.' },
  { key: 'val_frac', label: 'Held-back fraction', kind: 'float', step: 0.01, group: 'Text windows', help: 'Part of your text (0 to 0.5) kept aside to check the model on text it has not learned from.' },
  { key: 'eval_every', label: 'Check every … steps', kind: 'int', group: 'Checking progress', help: 'How often to measure the model on the held-back text. 0 = only at the end.' },
  { key: 'eval_windows', label: 'Check size (windows)', kind: 'int', group: 'Checking progress', help: 'How many pieces of held-back text each check reads. More is more accurate but slower.' },
  { key: 'sample_every', label: 'Sample every … steps', kind: 'int', group: 'Checking progress', help: 'How often the model writes a short sample so you can watch it improve. 0 = never.' },
  { key: 'sample_tokens', label: 'Sample length (tokens)', kind: 'int', group: 'Checking progress', help: 'How long each sample is.' },
  { key: 'early_stop_patience', label: 'Stop when it stops improving (checks)', kind: 'optionalInt', group: 'Checking progress', help: 'Ends training once the check on held-back text has not improved this many times in a row, so the model does not just memorise your text. The best model is kept and is the one Chat and Export use. 3 is a good choice; leave empty to train every step.' },
  { key: 'log_every', label: 'Report every … steps', kind: 'int', group: 'Checking progress', help: 'How often the chart gets a new point.' },
  { key: 'save_every', label: 'Save every … steps', kind: 'int', group: 'Saving', help: 'How often to save a checkpoint you can resume from or chat with. 0 = only at the end (and when stopped).' },
  { key: 'keep_checkpoints', label: 'Checkpoints to keep', kind: 'int', group: 'Saving', help: 'Older checkpoints are deleted to save disk space; this many of the newest stay, and the best one (lowest held-back loss) is always kept besides.' },
  { key: 'vocab_size', label: 'Vocabulary size', kind: 'int', group: 'Model', help: 'For a new model only: how many different word pieces its tokenizer knows (at least 257).' },
  { key: 'only_train_transformer_layers', label: 'Train only the inner layers', kind: 'bool', group: 'Model', help: 'Keeps the word-piece table fixed and trains only the layers in between. Can help when fine-tuning on very little text.' },
  { key: 'lora', label: 'Adapt with LoRA', kind: 'lora', group: 'Model', help: 'Trains a small add-on (a few percent of the weights) instead of the whole model: far less memory, a small file, and the model keeps what it already knew. Recommended for downloaded models over about 100 million parameters, such as SmolLM2 or Qwen2.5. The rank sets the add-on\'s size: 8 is typical.' },
  { key: 'seed', label: 'Random seed', kind: 'int', group: 'Model', help: 'The same seed with the same settings and data gives the same model. Change it to get a different one.' },
];

export type FieldErrors = Partial<Record<keyof TrainConfig, string>>;

/** A number the user left empty or typed nonsense into (bind:value yields null or NaN then). */
const missing = (v: unknown) => v == null || (typeof v === 'number' && Number.isNaN(v));
const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Every rule the engine checks, keyed by field; an empty object means the config may be sent. */
export function validateConfig(c: TrainConfig): FieldErrors {
  const e: FieldErrors = {};
  const need = (k: keyof TrainConfig) => {
    if (missing(c[k])) e[k] = 'Enter a number.';
    return !missing(c[k]);
  };
  const int = (k: keyof TrainConfig, min: number, msg: string) => {
    if (!need(k)) return;
    const v = c[k] as number;
    if (!num(v) || !Number.isInteger(v)) e[k] = 'Enter a whole number.';
    else if (v < min) e[k] = msg;
  };

  if (need('lr') && !(num(c.lr) && c.lr > 0 && c.lr < 1)) {
    e.lr = 'The learning rate must be above 0 and below 1 (try 0.0003).';
  }
  int('batch_size', 1, 'Batch size must be at least 1.');
  int('block_size', 2, 'Context length must be at least 2 tokens.');
  int('grad_accum', 1, 'Gradient accumulation must be at least 1 (1 = off).');
  if (need('val_frac') && !(num(c.val_frac) && c.val_frac >= 0 && c.val_frac <= 0.5)) {
    e.val_frac = 'Use a value from 0 to 0.5 (e.g. 0.1 holds back 10%).';
  }
  if (!missing(c.dropout) && !(num(c.dropout) && c.dropout >= 0 && c.dropout < 1)) {
    e.dropout = 'Use a value from 0 to 0.9, or leave it empty.';
  }
  if (need('weight_decay') && !(num(c.weight_decay) && c.weight_decay >= 0)) {
    e.weight_decay = 'Weight decay must be 0 or more.';
  }
  if (need('clip') && !(num(c.clip) && c.clip >= 0)) e.clip = 'Clipping must be 0 (off) or more.';
  for (const k of ['beta1', 'beta2'] as const) {
    if (need(k) && !(num(c[k]) && c[k] >= 0 && c[k] < 1)) e[k] = 'Use a value from 0 to below 1 (e.g. 0.9).';
  }
  if (need('min_lr_ratio') && !(num(c.min_lr_ratio) && c.min_lr_ratio >= 0 && c.min_lr_ratio <= 1)) {
    e.min_lr_ratio = 'Use a value from 0 to 1.';
  }
  if (!missing(c.steps) && !(num(c.steps) && Number.isInteger(c.steps) && c.steps >= 1)) {
    e.steps = 'Steps must be a whole number of at least 1, or empty.';
  }
  if (!missing(c.epochs)) {
    if (!(num(c.epochs) && c.epochs > 0)) e.epochs = 'Epochs must be above 0, or empty.';
    else if (!missing(c.steps)) e.epochs = 'Set either Steps or Epochs, not both: empty one of them.';
  }
  for (const k of ['warmup', 'eval_every', 'eval_windows', 'sample_every', 'sample_tokens', 'save_every', 'keep_checkpoints', 'seed'] as const) {
    int(k, 0, 'Must be 0 or more.');
  }
  int('log_every', 1, 'Must be at least 1.');
  if (!missing(c.early_stop_patience)) {
    const p = c.early_stop_patience;
    if (!(num(p) && Number.isInteger(p) && p >= 1)) e.early_stop_patience = 'Use a whole number of checks of at least 1, or leave it empty.';
    else if (c.eval_every === 0) e.early_stop_patience = 'Needs checks during training: set "Check every … steps" above 0.';
    else if (c.val_frac === 0 && !c.dataset) e.early_stop_patience = 'Needs held-back text: set the held-back fraction above 0.';
  }
  if ('scratch' in c.model) {
    int('vocab_size', 257, 'A new model needs a vocabulary of at least 257 word pieces.');
  }
  if (c.lora) {
    if ('scratch' in c.model) e.lora = 'LoRA adapts a downloaded model; a new model learns all its weights. Turn LoRA off.';
    else if (!(num(c.lora.rank) && Number.isInteger(c.lora.rank) && c.lora.rank >= 1 && c.lora.rank <= 1024)) e.lora = 'The LoRA rank must be a whole number from 1 to 1024 (8 is typical).';
    else if (c.only_train_transformer_layers) e.lora = 'LoRA already freezes the model: turn off "Train only the inner layers".';
  }
  if (c.data.length === 0) e.data = 'Add at least one text file on the Data page (or use the demo dataset).';
  return e;
}

/**
 * Applies a freshly loaded preset without losing what the user chose on other pages: the model,
 * the data, the held-back fraction and how the text is prepared (e.g. personal data replaced)
 * come from the current config.
 */
export function applyPreset(preset: TrainConfig, current: TrainConfig | null): TrainConfig {
  if (!current) return preset;
  return { ...preset, model: current.model, data: current.data, val_frac: current.val_frac, prepare: current.prepare, lora: current.lora, recompute_activations: current.recompute_activations };
}

/** LoRA's usual settings (rank 8, alpha 16, dropout 0.05, as common LoRA recipes use them): what the LoRA switch turns on. */
export const DEFAULT_LORA = { rank: 8, alpha: 16, dropout: 0.05, targets: [] as string[] };

/** A run name people can recognise later: first file's name and the date, e.g. "notes-0312-1405". */
export function defaultRunName(dataPaths: string[], now = new Date()): string {
  const first = dataPaths[0]?.split(/[\\/]/).pop() ?? 'run';
  const stem = first.replace(/\.[^.]+$/, '').replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '') || 'run';
  const p = (n: number) => String(n).padStart(2, '0');
  return `${stem}-${p(now.getMonth() + 1)}${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}`;
}

/**
 * An emptied number input binds as undefined (or NaN); optional settings send that as null
 * ("let the engine choose"). Required ones are left for validateConfig to flag.
 */
export function normalize(c: TrainConfig): TrainConfig {
  const out = { ...c };
  for (const f of FIELDS) {
    if ((f.kind === 'optionalInt' || f.kind === 'optionalFloat') && missing(out[f.key])) {
      (out as Record<string, unknown>)[f.key] = null;
    }
  }
  return out;
}

/** The backend names the run folder after this, so it must be a plain file name. */
export function validateRunName(name: string): string | null {
  const n = name.trim();
  if (!n) return 'Give the run a name.';
  if (/[\\/]/.test(n)) return 'A run name cannot contain / or \\.';
  if (n.startsWith('.')) return 'A run name cannot start with a dot.';
  return null;
}
