import { emit } from '@tauri-apps/api/event';
import { mockWindows } from '@tauri-apps/api/mocks';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, describe, expect, it } from 'vitest';
import App from './App.svelte';
import { deferred, fakeBackend, flush } from './test/backend';
import { quickConfig } from './test/fixtures';

const base = {
  app_info: () => ({ version: '0.1.0', device: 'CPU (16 threads)', home: '/h', runsDir: '/h/runs' }),
  default_train_config: () => quickConfig(),
  list_runs: () => [],
};

afterEach(async () => {
  // Unmount while the fake backend still exists: listeners unregister asynchronously.
  cleanup();
  await flush();
  delete (globalThis as { isTauri?: boolean }).isTauri;
});

describe('App', () => {
  it('starts on Data with the demo path, loads the Quick preset, and navigates', async () => {
    const b = fakeBackend(base);
    render(App);
    expect(screen.getByTestId('use-demo')).toBeTruthy();
    await waitFor(() => expect(screen.getByText(/CPU \(16 threads\)/)).toBeTruthy());
    expect(b.last('default_train_config')).toEqual({ preset: 'quick' });
    await fireEvent.click(screen.getByTestId('nav-model'));
    expect(screen.getByRole('heading', { level: 1 }).textContent).toBe('Model');
    await fireEvent.click(screen.getByTestId('nav-runs'));
    expect(screen.getByRole('heading', { level: 1 }).textContent).toBe('Runs');
  });

  it('asks before closing during training and stops, saves and quits on yes', async () => {
    (globalThis as { isTauri?: boolean }).isTauri = true;
    mockWindows('main');
    const b = fakeBackend({ ...base, stop_and_quit: () => null }, { events: true });
    render(App);
    await flush();
    await emit('close-requested');
    const dialog = await screen.findByTestId('confirm-dialog');
    expect(dialog.textContent).toContain('Training is running. Stop it, save a checkpoint and quit?');

    await fireEvent.click(screen.getByTestId('confirm-cancel'));
    expect(screen.queryByTestId('confirm-dialog')).toBeNull();
    expect(b.calls.some((c) => c.cmd === 'stop_and_quit')).toBe(false);

    // "Saving…" stays up until the backend has written the checkpoint (then it exits the app).
    const saved = deferred<null>();
    b.handle('stop_and_quit', () => saved.promise);
    await emit('close-requested');
    await fireEvent.click(await screen.findByTestId('confirm-yes'));
    expect(b.calls.some((c) => c.cmd === 'stop_and_quit')).toBe(true);
    expect((await screen.findByTestId('closing-saving')).textContent).toContain('Saving a checkpoint');
    await flush();
    expect(screen.queryByTestId('closing-saving')).not.toBeNull();
    saved.resolve(null);
    await waitFor(() => expect(screen.queryByTestId('closing-saving')).toBeNull());
  });
});
