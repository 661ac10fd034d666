// Each test gets a fresh fake backend: mocks installed per test are cleared afterwards.
import { clearMocks } from '@tauri-apps/api/mocks';
import { afterEach } from 'vitest';
import { scopeRemembered } from '../stores/remember';

// Browser APIs jsdom lacks that uPlot touches when its module loads or a chart mounts.
globalThis.matchMedia ??= ((query: string) => ({
  matches: false,
  media: query,
  onchange: null,
  addListener() {},
  removeListener() {},
  addEventListener() {},
  removeEventListener() {},
  dispatchEvent: () => false,
})) as typeof matchMedia;
globalThis.ResizeObserver ??= class {
  observe() {}
  unobserve() {}
  disconnect() {}
} as unknown as typeof ResizeObserver;

afterEach(() => {
  clearMocks();
  // What the app remembers between launches must not leak from one test into the next.
  localStorage.clear();
  scopeRemembered('');
});
