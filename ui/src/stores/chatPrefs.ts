// The Chat page's settings kept between launches in the webview's localStorage. What is read back
// is checked field by field: a value that is missing, of the wrong type or out of range (an old
// version, a hand edit, a half-written save) falls back to its default instead of reaching the
// model or breaking the page.
import { DEFAULT_SETTINGS, SETTING_RULES, settingOk, type ChatSettings } from './chat';

export const PREFS_KEY = 'tunesmith.chat.v1';

export interface ChatPrefs {
  settings: ChatSettings;
  /** Show replies as the raw text the model wrote instead of rendering Markdown. */
  plainText: boolean;
}

export function defaultPrefs(): ChatPrefs {
  return { settings: { ...DEFAULT_SETTINGS, stop: [...DEFAULT_SETTINGS.stop] }, plainText: false };
}

/** The most stop strings kept, and their longest length: more is a corrupt save, not a choice. */
const MAX_STOPS = 32;
const MAX_STOP_LENGTH = 200;
const MAX_SYSTEM_LENGTH = 4000;

/** The form offers at most this many samples; a larger stored number is not the user's choice. */
const MAX_SAMPLES = 8;

/** Prefs from whatever was stored; each bad field independently becomes its default. */
export function parsePrefs(raw: string | null): ChatPrefs {
  const prefs = defaultPrefs();
  if (raw === null) return prefs;
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    return prefs;
  }
  if (typeof data !== 'object' || data === null) return prefs;
  const { settings, plainText } = data as Record<string, unknown>;
  if (typeof plainText === 'boolean') prefs.plainText = plainText;
  if (typeof settings !== 'object' || settings === null) return prefs;
  const s = settings as Record<string, unknown>;
  const d = prefs.settings;
  for (const key of Object.keys(SETTING_RULES) as (keyof typeof SETTING_RULES)[]) {
    const v = s[key];
    if (settingOk(key, v)) d[key] = v;
  }
  if (d.n > MAX_SAMPLES) d.n = DEFAULT_SETTINGS.n;
  if (typeof s.system === 'string' && s.system.length <= MAX_SYSTEM_LENGTH) d.system = s.system;
  if (Array.isArray(s.stop) && s.stop.length <= MAX_STOPS && s.stop.every((x) => typeof x === 'string' && x.length > 0 && x.length <= MAX_STOP_LENGTH)) {
    d.stop = [...s.stop];
  }
  return prefs;
}

/** Storage can be missing or refuse (private mode, quota); settings then last for this session only. */
function storage(): Storage | null {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}

export function loadPrefs(store: Storage | null = storage()): ChatPrefs {
  try {
    return parsePrefs(store?.getItem(PREFS_KEY) ?? null);
  } catch {
    return defaultPrefs();
  }
}

export function savePrefs(prefs: ChatPrefs, store: Storage | null = storage()) {
  try {
    store?.setItem(PREFS_KEY, JSON.stringify(prefs));
  } catch {
    // Not worth interrupting a conversation over: the settings still apply until the app closes.
  }
}
