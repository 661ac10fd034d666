// What Tunesmith remembers between launches, kept in the page's localStorage: the files on the
// Data page, the chosen preset and training settings, and the hub models downloaded. Everything
// is checked on read; a missing, corrupt or out-of-range value falls back to the default, so a
// damaged store can never stop the app from starting.
import type { Preset } from '../ipc/commands';
import type { TrainConfig } from '../ipc/types';
import { HUB_MODELS, type HubId } from './models';
import { FIELDS, PRESETS, validateConfig, type FieldKey } from './trainConfig';

export const KEYS = { files: 'dataFiles', training: 'training', downloads: 'downloadedModels' } as const;

/**
 * Everything remembered belongs to one Tunesmith data folder (TUNESMITH_HOME): another folder
 * has other files, runs and downloads, and a test's fresh folder must start fresh.
 */
let scope = '';

export function scopeRemembered(home: string) {
  scope = home;
}

/** "tunesmith.dataFiles@/home/ana/.local/share/tunesmith" (no suffix before the folder is known). */
export function storageKey(key: string): string {
  return scope ? `tunesmith.${key}@${scope}` : `tunesmith.${key}`;
}

function read<T>(key: string, parse: (v: unknown) => T | null): T | null {
  try {
    const raw = globalThis.localStorage?.getItem(storageKey(key));
    return raw == null ? null : parse(JSON.parse(raw));
  } catch {
    return null; // not JSON, or storage disabled
  }
}

function write(key: string, value: unknown) {
  try {
    globalThis.localStorage?.setItem(storageKey(key), JSON.stringify(value));
  } catch {
    // Storage full or disabled: remembering is a convenience, never a reason to fail.
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

// ---- Data page files -------------------------------------------------------------------------

/** Paths are re-inspected on launch, so only their shape is checked here. */
export function parsePaths(v: unknown): string[] | null {
  if (!Array.isArray(v)) return null;
  const paths = v.filter((p): p is string => typeof p === 'string' && p.trim().length > 0);
  return [...new Set(paths)];
}

export const loadFiles = (): string[] => read(KEYS.files, parsePaths) ?? [];
export const rememberFiles = (paths: string[]) => write(KEYS.files, paths);

// ---- Preset and training settings ------------------------------------------------------------

/** The numbers and switches the user can set; the model and data live on their own pages. */
export type Settings = Partial<Pick<TrainConfig, FieldKey>> & { scrub_pii?: boolean };

export interface SavedTraining {
  preset: Preset | null;
  settings: Settings;
  /** The setup's own preset-fitted steps (see Setup.fittedSteps); null when the user chose. */
  fittedSteps: number | null;
}

function fieldOk(kind: (typeof FIELDS)[number]['kind'], v: unknown): boolean {
  const finite = typeof v === 'number' && Number.isFinite(v);
  switch (kind) {
    case 'int':
      return finite && Number.isInteger(v);
    case 'float':
      return finite;
    case 'optionalInt':
      return v === null || (finite && Number.isInteger(v));
    case 'optionalFloat':
      return v === null || finite;
    case 'bool':
      return typeof v === 'boolean';
    case 'lora': {
      if (v === null) return true;
      const l = v as Record<string, unknown>;
      return (
        typeof v === 'object' &&
        Number.isInteger(l.rank) &&
        typeof l.alpha === 'number' &&
        typeof l.dropout === 'number' &&
        Array.isArray(l.targets) &&
        l.targets.every((t) => typeof t === 'string')
      );
    }
  }
}

/** Keeps only well-typed known fields; the values' ranges are checked when applied. */
export function parseTraining(v: unknown): SavedTraining | null {
  if (!isObject(v)) return null;
  const preset = PRESETS.some((p) => p.id === v.preset) ? (v.preset as Preset) : null;
  const settings: Settings = {};
  const raw = isObject(v.settings) ? v.settings : {};
  for (const f of FIELDS) {
    if (f.key in raw && fieldOk(f.kind, raw[f.key])) (settings as Record<string, unknown>)[f.key] = raw[f.key];
  }
  if (typeof raw.scrub_pii === 'boolean') settings.scrub_pii = raw.scrub_pii;
  const fitted = v.fittedSteps;
  const fittedSteps = typeof fitted === 'number' && Number.isInteger(fitted) && fitted > 0 ? fitted : null;
  return { preset, settings, fittedSteps };
}

/** The settings worth remembering from a config. */
export function settingsOf(c: TrainConfig): Settings {
  const s: Settings = { scrub_pii: c.prepare.scrub_pii };
  for (const f of FIELDS) (s as Record<string, unknown>)[f.key] = c[f.key];
  return s;
}

/**
 * `base` with the remembered settings laid over it. A value the engine would refuse (out of
 * range, or steps and epochs both set) falls back to the base's, field by field.
 */
export function applySettings(base: TrainConfig, s: Settings): TrainConfig {
  const { scrub_pii, ...fields } = s;
  const out: TrainConfig = { ...base, ...fields, prepare: { ...base.prepare, scrub_pii: scrub_pii ?? base.prepare.scrub_pii } };
  // The data is checked on its own page; any placeholder lets the field rules speak.
  const errors = validateConfig({ ...out, data: ['-'] });
  for (const key of Object.keys(errors) as (keyof TrainConfig)[]) {
    (out as Record<string, unknown>)[key] = base[key];
    // Steps and epochs are one choice: fall back on both together.
    if (key === 'epochs' || key === 'steps') Object.assign(out, { steps: base.steps, epochs: base.epochs });
  }
  return out;
}

export const loadTraining = (): SavedTraining | null => read(KEYS.training, parseTraining);
export const rememberTraining = (t: SavedTraining) => write(KEYS.training, t);

// ---- Downloaded hub models -------------------------------------------------------------------

/** Hub id → the folder it was downloaded to. Unknown ids are dropped. */
export function parseDownloads(v: unknown): Partial<Record<HubId, string>> | null {
  if (!isObject(v)) return null;
  const out: Partial<Record<HubId, string>> = {};
  for (const m of HUB_MODELS) {
    const path = v[m.id];
    if (typeof path === 'string' && path.length > 0) out[m.id] = path;
  }
  return out;
}

export const loadDownloads = (): Partial<Record<HubId, string>> => read(KEYS.downloads, parseDownloads) ?? {};

export function rememberDownload(id: HubId, path: string) {
  write(KEYS.downloads, { ...loadDownloads(), [id]: path });
}
