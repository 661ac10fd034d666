// The end-to-end test's drop entry point exists only when the backend says the app was started
// for that test (TUNESMITH_E2E=1).
import { mockWindows } from '@tauri-apps/api/mocks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fakeBackend } from '../test/backend';
import { onFileDrop } from './window';

type Hooks = { __tunesmithDrop?: (paths: string[]) => void; isTauri?: boolean };

describe('onFileDrop', () => {
  // As inside the app's window (otherwise onFileDrop does nothing at all).
  beforeEach(() => void ((globalThis as unknown as Hooks).isTauri = true));
  afterEach(() => {
    delete (window as unknown as Hooks).__tunesmithDrop;
    delete (globalThis as unknown as Hooks).isTauri;
  });

  for (const enabled of [false, true]) {
    it(`the test drop hook ${enabled ? 'exists' : 'does not exist'} when test hooks are ${enabled ? 'on' : 'off'}`, async () => {
      mockWindows('main');
      const dropped: string[][] = [];
      const b = fakeBackend({ test_hooks: () => enabled, 'plugin:event|listen': () => 1, 'plugin:event|unlisten': () => null });
      const off = await onFileDrop({ hovering: () => {}, drop: (p) => dropped.push(p) });
      expect(b.calls.map((c) => c.cmd)).toContain('test_hooks');
      const hook = (window as unknown as Hooks).__tunesmithDrop;
      expect(hook !== undefined).toBe(enabled);
      hook?.(['/a.txt']);
      expect(dropped).toEqual(enabled ? [['/a.txt']] : []);
      off();
      expect((window as unknown as Hooks).__tunesmithDrop).toBeUndefined();
    });
  }
});
