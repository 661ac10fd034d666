// Typed wrappers for every Tauri command. Argument keys are camelCase (Tauri converts them to the
// Rust snake_case parameters); streamed jobs take a plain callback and get a Channel here, so no
// other module needs @tauri-apps/api. Every rejection is a CommandError (see errors.ts).
import { Channel, invoke } from '@tauri-apps/api/core';
import type {
  AppInfo,
  Chat,
  CopyReport,
  CurrentJob,
  Estimate,
  Event,
  ExportFormat,
  ExportReport,
  FileReport,
  GenerateConfig,
  JobKind,
  Generation,
  JobStarted,
  PrepareOptions,
  Quant,
  Report,
  RunMetrics,
  RunSummary,
  ServeInfo,
  Target,
  TargetReport,
  TrainConfig,
  TrainingMemory,
} from './types';

export type Preset = 'quick' | 'balanced' | 'thorough';
export type OnEvent = (event: Event) => void;

function channel(onEvent: OnEvent): Channel<Event> {
  return new Channel<Event>(onEvent);
}

export const appInfo = () => invoke<AppInfo>('app_info');

/** True only when the end-to-end test started the app (TUNESMITH_E2E=1): test entry points allowed. */
export const testHooks = () => invoke<boolean>('test_hooks');

export const inspectFiles = (paths: string[]) => invoke<FileReport[]>('inspect_files', { paths });

/** The corpus health report: duplicates, personal data, warnings and suggested lengths. */
export const dataReport = (paths: string[], options: PrepareOptions) => invoke<Report>('data_report', { paths, options });

/** Estimated training memory for `config` (as set, and with activations recomputed) and this machine's memory. */
export const trainingMemory = (config: TrainConfig) => invoke<TrainingMemory>('training_memory', { config });

/** Path of the demo text that ships with the app. */
export const demoDataset = () => invoke<string>('demo_dataset');

export const defaultTrainConfig = (preset: Preset) =>
  invoke<TrainConfig>('default_train_config', { preset });

export const startTraining = (name: string, config: TrainConfig, onEvent: OnEvent) =>
  invoke<JobStarted>('start_training', { name, config, onEvent: channel(onEvent) });

export const resumeTraining = (runPath: string, onEvent: OnEvent) =>
  invoke<JobStarted>('resume_training', { runPath, onEvent: channel(onEvent) });

/** Goes back to checkpoint `step` (0: the start; null: the newest) and continues at learning rate `lr` (the doctor's remedy). */
export const resumeTrainingFrom = (runPath: string, step: number | null, lr: number, onEvent: OnEvent) =>
  invoke<JobStarted>('resume_training_from', { runPath, step, lr, onEvent: channel(onEvent) });

/** Asks a job to stop; training saves a checkpoint first. Its stream still ends normally. */
export const stopJob = (jobId: string) => invoke<void>('stop_job', { jobId });

/**
 * After a page reload: the running job of `kind` (null if none). Its events go to `onEvent` from
 * now on, starting with its latest progress, evaluation and step.
 */
export const currentJob = (kind: JobKind, onEvent: OnEvent) =>
  invoke<CurrentJob | null>('current_job', { kind, onEvent: channel(onEvent) });

export const listRuns = () => invoke<RunSummary[]>('list_runs');

export const runMetrics = (runPath: string) => invoke<RunMetrics>('run_metrics', { runPath });

export const renameRun = (runPath: string, newName: string) =>
  invoke<RunSummary>('rename_run', { runPath, newName });

export const deleteRun = (runPath: string) => invoke<void>('delete_run', { runPath });

/**
 * Generates `config.n` samples; tokens stream as `token` events and the promise resolves with the
 * final texts. `jobId` is chosen here so the caller can stop the job before the promise resolves.
 */
export const generate = (jobId: string, model: string, config: GenerateConfig, onEvent: OnEvent) =>
  invoke<Generation[]>('generate', { jobId, model, config, onEvent: channel(onEvent) });

/** Downloads a hub model into the local cache; resolves with its folder. `stopJob(jobId)` stops it. */
export const downloadModel = (jobId: string, id: string, onEvent: OnEvent) =>
  invoke<string>('download_model', { jobId, id, onEvent: channel(onEvent) });

export const listChats = (runPath: string) => invoke<Chat[]>('list_chats', { runPath });

export const saveChat = (runPath: string, chat: Chat) => invoke<void>('save_chat', { runPath, chat });

/** The user agreed to close while training: the backend stops the job, saves, then exits (it resolves only if exiting failed). */
export const stopAndQuit = () => invoke<void>('stop_and_quit');
/** The answer "Keep training" to closing during training: the next close asks again. */
export const keepTraining = () => invoke<void>('keep_training');

/**
 * Exports a run into the data folder's exports/ (replacing an earlier export of the same kind);
 * resolves with what was written and how the reloaded export compared. `stopJob(jobId)` stops it.
 */
export const exportRun = (jobId: string, runPath: string, format: ExportFormat, quant: Quant | null, onEvent: OnEvent) =>
  invoke<ExportReport>('export_run', { jobId, runPath, format, quant, onEvent: channel(onEvent) });

/** Measures a config before it is started: a few real steps give its time and peak memory. */
export const estimateTraining = (jobId: string, config: TrainConfig, onEvent: OnEvent) =>
  invoke<Estimate>('estimate_training', { jobId, config, onEvent: channel(onEvent) });

/** A run's base model and checkpoints answering held-out examples (the run's own when `pairs` is null), scored. */
export const evaluateRun = (jobId: string, runPath: string, pairs: string | null, targets: Target[], onEvent: OnEvent) =>
  invoke<TargetReport[]>('evaluate_run', { jobId, runPath, pairs, targets, onEvent: channel(onEvent) });

/** How much of a reply of a run's model was copied word for word from its training text (null: the text is gone). */
export const checkCopied = (runPath: string, text: string) => invoke<CopyReport | null>('check_copied', { runPath, text });

/** Serves a run's model on this computer (OpenAI-compatible); replaces the one served before. */
export const startServing = (runPath: string) => invoke<ServeInfo>('start_serving', { runPath });

export const stopServing = () => invoke<void>('stop_serving');

/** The model being served, if any. */
export const serving = () => invoke<ServeInfo | null>('serving');
