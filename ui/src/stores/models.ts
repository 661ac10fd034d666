// What the user can train or chat with, how big each choice is, and how it maps to the engine's
// ModelSpec. Sizes are estimates for the Model page, not promises.
import type { ModelSpec, TrainingMemory } from '../ipc/types';

export type ScratchSize = 'tiny' | 'small' | 'base';
export type HubId =
  | 'gpt2'
  | 'distilgpt2'
  | 'gpt2-medium'
  | 'HuggingFaceTB/SmolLM2-135M-Instruct'
  | 'HuggingFaceTB/SmolLM2-360M-Instruct'
  | 'Qwen/Qwen2.5-0.5B-Instruct';

export type ModelChoice =
  | { kind: 'scratch'; size: ScratchSize }
  | { kind: 'hub'; id: HubId }
  | { kind: 'folder'; path: string }
  | { kind: 'run'; path: string; name: string };

export const DEFAULT_MODEL: ModelChoice = { kind: 'scratch', size: 'tiny' };

/** Layers and width of the engine's from-scratch presets (crates/engine model/config.rs). */
export const SCRATCH_SHAPES: Record<ScratchSize, { layers: number; width: number; blurb: string }> = {
  tiny: { layers: 4, width: 256, blurb: 'Trains in minutes on a laptop.' },
  small: { layers: 6, width: 384, blurb: 'Noticeably better; several times slower.' },
  base: { layers: 12, width: 768, blurb: 'GPT-2 sized. Needs a fast machine or a GPU.' },
};

export const HUB_MODELS: { id: HubId; label: string; params: number; download: string; blurb: string }[] = [
  { id: 'distilgpt2', label: 'DistilGPT-2', params: 82e6, download: '≈ 350 MB', blurb: 'A slimmer GPT-2: faster, slightly less fluent.' },
  { id: 'gpt2', label: 'GPT-2', params: 124e6, download: '≈ 550 MB', blurb: 'Already knows English; learns your style quickly.' },
  { id: 'gpt2-medium', label: 'GPT-2 Medium', params: 355e6, download: '≈ 1.5 GB', blurb: 'More capable, much slower to train.' },
  { id: 'HuggingFaceTB/SmolLM2-135M-Instruct', label: 'SmolLM2 135M Instruct', params: 134.5e6, download: '≈ 270 MB', blurb: 'A small chat model that already follows instructions: the best start for a question-answering assistant on a laptop. Apache 2.0 licence. Train it with LoRA (Advanced settings).' },
  { id: 'HuggingFaceTB/SmolLM2-360M-Instruct', label: 'SmolLM2 360M Instruct', params: 362e6, download: '≈ 720 MB', blurb: 'The bigger SmolLM2 chat model: better answers, about three times slower. Apache 2.0 licence. Use LoRA.' },
  { id: 'Qwen/Qwen2.5-0.5B-Instruct', label: 'Qwen2.5 0.5B Instruct', params: 494e6, download: '≈ 990 MB', blurb: 'A capable multilingual chat model (29 languages). Apache 2.0 licence. Use LoRA.' },
];

/**
 * GPT-2 parameter count: 12·L·d² in the blocks (attention 4d², MLP 8d²) plus the token and
 * position embeddings (the output layer shares the token table).
 */
export function scratchParams(size: ScratchSize, vocabSize: number, blockSize: number): number {
  const { layers, width } = SCRATCH_SHAPES[size];
  const ctx = size === 'base' ? Math.max(blockSize, 1024) : blockSize;
  return 12 * layers * width * width + vocabSize * width + ctx * width;
}

export function modelParams(choice: ModelChoice, vocabSize: number, blockSize: number): number | null {
  if (choice.kind === 'scratch') return scratchParams(choice.size, vocabSize, blockSize);
  if (choice.kind === 'hub') return HUB_MODELS.find((m) => m.id === choice.id)?.params ?? null;
  return null; // read from the folder when training starts
}

/** Downloaded models larger than this train with LoRA unless the user turns it off. */
export const LORA_ABOVE_PARAMS = 100e6;

/** Whether choosing `choice` turns LoRA on by default: a pretrained model over ~100M parameters. */
export function loraByDefault(choice: ModelChoice, params: number | null): boolean {
  return choice.kind !== 'scratch' && params !== null && params > LORA_ABOVE_PARAMS;
}

/**
 * The Model page's memory sentence from the engine's estimate (weights, optimiser and the
 * activations of the chosen batch and context length) and this machine's free memory.
 */
export function memoryLine(m: TrainingMemory, lora: boolean, recompute: boolean, bytes: (n: number) => string): string {
  const e = m.estimate;
  if (!e) return 'Memory is worked out from the model when training starts.';
  const how = lora ? ' with LoRA' : '';
  const needs = `needs ≈ ${bytes(e.totalBytes)} of memory to train${how}${recompute ? ' (saving memory)' : ''}`;
  const free = m.machine?.availableBytes;
  if (free == null) return needs;
  if (e.totalBytes <= free) return `${needs} · fits this computer (${bytes(free)} free)`;
  const saved = m.withRecompute;
  if (!recompute && saved && saved.totalBytes <= free) {
    return `${needs}: more than the ${bytes(free)} free, but it fits with “Save memory” (≈ ${bytes(saved.totalBytes)}, about a third slower), which is turned on when you choose it`;
  }
  return `${needs}: more than the ${bytes(free)} this computer has free. ${lora ? '' : 'Turn on LoRA, or '}use a shorter context length or a smaller batch.`;
}

export function toModelSpec(choice: ModelChoice): ModelSpec {
  switch (choice.kind) {
    case 'scratch':
      return { scratch: choice.size };
    case 'hub':
      return { source: choice.id };
    case 'folder':
    case 'run':
      return { source: choice.path };
  }
}

/** A local path rather than a hub id: absolute, home- or dot-relative, or a Windows drive path. */
function isLocalPath(source: string): boolean {
  return /^([/\\~.]|[A-Za-z]:[/\\])/.test(source);
}

/**
 * The one plain-words name of a model source as the engine records it (RunSummary.model): a hub
 * id, a folder, or `scratch:<size>`. "New tiny model (trained from scratch)", "GPT-2 (124M)",
 * a folder by its name, a run's checkpoint as "Run “notes” (step 200)".
 */
export function modelName(source: string): string {
  if (source.startsWith('scratch:')) return `New ${source.slice('scratch:'.length)} model (trained from scratch)`;
  const hub = HUB_MODELS.find((m) => m.id === source);
  if (hub) return `${hub.label} (${Math.round(hub.params / 1e6)}M)`;
  if (!isLocalPath(source)) return `Hugging Face model “${source}”`;
  const parts = source.split(/[\\/]+/).filter((p) => p.length > 0);
  const last = parts.at(-1) ?? source;
  // A checkpoint folder (runs/<run>/checkpoints/step-N) says little by its own name.
  const step = /^step-(\d+)$/.exec(last);
  if (step && parts.at(-2) === 'checkpoints' && parts.length >= 3) return `Run “${parts.at(-3)}” (step ${step[1]})`;
  return last;
}

export function describeModel(choice: ModelChoice): string {
  switch (choice.kind) {
    case 'scratch':
      return modelName(`scratch:${choice.size}`);
    case 'hub':
      return modelName(choice.id);
    case 'folder':
      return `Model folder ${modelName(choice.path)}`;
    case 'run':
      return `Continue from run “${choice.name}”`;
  }
}
