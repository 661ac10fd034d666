// What the user can train or chat with, how big each choice is, and how it maps to the engine's
// ModelSpec. Sizes are estimates for the Model page, not promises.
import type { ModelSpec } from '../ipc/types';

export type ScratchSize = 'tiny' | 'small' | 'base';
export type HubId = 'gpt2' | 'distilgpt2' | 'gpt2-medium';

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

/**
 * Rough training memory: weights, gradients and the two AdamW moments in f32 (4 × 4 bytes per
 * parameter). Activations come on top and grow with batch and context length.
 */
export function trainingMemoryBytes(params: number): number {
  return params * 16;
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

export function describeModel(choice: ModelChoice): string {
  switch (choice.kind) {
    case 'scratch':
      return `New ${choice.size} model from scratch`;
    case 'hub':
      return HUB_MODELS.find((m) => m.id === choice.id)?.label ?? choice.id;
    case 'folder':
      return `Model folder ${choice.path.split(/[\\/]/).pop()}`;
    case 'run':
      return `Continue from run “${choice.name}”`;
  }
}
