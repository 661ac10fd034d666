// STYLE.md principle 11: only ui/src/ipc/ talks to Tauri, so the contract lives in one place.
import { expect, it } from 'vitest';

const sources = import.meta.glob(['./**/*.ts', './**/*.svelte', '!./**/*.test.ts', '!./test/**', '!./ipc/**'], {
  query: '?raw',
  import: 'default',
  eager: true,
}) as Record<string, string>;

it('no module outside ipc/ imports @tauri-apps', () => {
  expect(Object.keys(sources).length).toBeGreaterThan(20);
  const offenders = Object.entries(sources)
    .filter(([, text]) => /from\s+['"]@tauri-apps\//.test(text))
    .map(([path]) => path);
  expect(offenders).toEqual([]);
});
