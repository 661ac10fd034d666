// Settings read back from a previous launch: good values come back, bad ones become defaults.
import { beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS, validateSettings } from './chat';
import { defaultPrefs, loadPrefs, parsePrefs, PREFS_KEY, savePrefs } from './chatPrefs';
import { ChatSession } from './chatSession.svelte';

beforeEach(() => localStorage.clear());

const chosen = { temperature: 0.3, top_k: 0, top_p: 0.5, max_new_tokens: 400, repetition_penalty: 1.3, stop: ['\n\n', 'END'], n: 4, system: 'Answer in French.' };

describe('chat prefs', () => {
  it('round-trips through localStorage', () => {
    savePrefs({ settings: chosen, plainText: true });
    expect(loadPrefs()).toEqual({ settings: chosen, plainText: true });
  });

  it('nothing stored, or a save that is not JSON or not an object, gives the defaults', () => {
    for (const raw of [null, '', '{', 'null', '42', '"text"', '[]', '{"settings": 5}']) {
      expect(parsePrefs(raw), String(raw)).toEqual(defaultPrefs());
    }
    localStorage.setItem(PREFS_KEY, '{"settings": {"temperature": ');
    expect(loadPrefs()).toEqual(defaultPrefs());
  });

  it('each bad field falls back to its default while the good ones are kept', () => {
    const stored = {
      plainText: 'yes',
      settings: {
        temperature: -1,
        top_k: 2.5,
        top_p: 0.5,
        max_new_tokens: '400',
        repetition_penalty: 0,
        stop: ['ok', 7],
        n: 99,
      },
    };
    const prefs = parsePrefs(JSON.stringify(stored));
    expect(prefs.plainText).toBe(false);
    expect(prefs.settings).toEqual({ ...DEFAULT_SETTINGS, top_p: 0.5 });
    expect(validateSettings(prefs.settings)).toBeNull();
    // Values JSON cannot even hold (NaN, Infinity) arrive as null and fall back too.
    const odd = parsePrefs(JSON.stringify({ settings: { temperature: Infinity, top_p: NaN, stop: Array(100).fill('x') } }));
    expect(odd.settings).toEqual(DEFAULT_SETTINGS);
  });

  it('defaults are fresh copies, so editing one session cannot change them', () => {
    const prefs = loadPrefs();
    prefs.settings.stop.push('x');
    prefs.settings.temperature = 2;
    expect(loadPrefs()).toEqual(defaultPrefs());
    expect(DEFAULT_SETTINGS.stop).toEqual([]);
  });

  it('a storage that refuses to save or read is not an error', () => {
    const refusing = {
      getItem: () => {
        throw new Error('SecurityError');
      },
      setItem: () => {
        throw new Error('QuotaExceededError');
      },
    } as unknown as Storage;
    expect(() => savePrefs(defaultPrefs(), refusing)).not.toThrow();
    expect(loadPrefs(refusing)).toEqual(defaultPrefs());
  });

  it('a new session starts from what the last one remembered', () => {
    const first = new ChatSession();
    expect(first.settings).toEqual(DEFAULT_SETTINGS);
    first.settings.temperature = 0.2;
    first.plainText = true;
    first.remember();
    const next = new ChatSession();
    expect(next.settings.temperature).toBe(0.2);
    expect(next.plainText).toBe(true);
  });
});
