// Realistic payloads, shaped like the Rust side's (see crates/engine src/settings.rs presets).
import type { FileReport, RunSummary, TrainConfig } from '../ipc/types';

export function quickConfig(over: Partial<TrainConfig> = {}): TrainConfig {
  return {
    model: { scratch: 'tiny' },
    data: [],
    dataset: null,
    prepare: {
      val_frac: 0.1,
      seed: 42,
      chunk_tokens: 0,
      overlap: 0,
      dedupe: true,
      near_dup_threshold: 0.8,
      scrub_pii: false,
      clean: { nfc: true, control_chars: true, whitespace: true, boilerplate: true, boilerplate_share: 0.5 },
      pair_columns: null,
      max_unpacked_mb: 512,
      stream_above_mb: 64,
    },
    steps: 200,
    epochs: null,
    batch_size: 4,
    block_size: 128,
    lr: 1e-3,
    min_lr_ratio: 0.1,
    warmup: 10,
    weight_decay: 0.1,
    beta1: 0.9,
    beta2: 0.999,
    grad_accum: 1,
    clip: 1.0,
    dropout: null,
    val_frac: 0.1,
    eval_every: 50,
    eval_windows: 16,
    sample_every: 50,
    sample_tokens: 64,
    save_every: 100,
    keep_checkpoints: 3,
    early_stop_patience: 3,
    vocab_size: 4096,
    only_train_transformer_layers: false,
    lora: null,
    recompute_activations: false,
    seed: 42,
    log_every: 10,
    ...over,
  };
}

export function fileReport(over: Partial<FileReport> = {}): FileReport {
  return {
    path: '/data/business-rules.md',
    name: 'business-rules.md',
    extension: 'md',
    sizeBytes: 52_000,
    chars: 51_000,
    words: 8_400,
    tokensEstimate: 12_750,
    status: 'ok',
    error: null,
    preview: 'When a customer asks for a refund, check the receipt first.',
    ...over,
  };
}

export function runSummary(over: Partial<RunSummary> = {}): RunSummary {
  return {
    name: 'demo',
    path: '/home/u/.tunesmith/runs/demo',
    status: 'completed',
    model: 'scratch:tiny',
    step: 200,
    totalSteps: 200,
    bestValLoss: 3.2,
    updatedUnix: 1_700_000_000,
    resumable: false,
    checkpoints: [100, 200],
    bestStep: null,
    error: null,
    lora: false,
    ...over,
  };
}
