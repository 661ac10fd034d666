import { emit } from '@tauri-apps/api/event';
import { mockWindows } from '@tauri-apps/api/mocks';
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { afterEach, describe, expect, it } from 'vitest';
import App from './App.svelte';
import { dataset } from './stores/dataset.svelte';
import { nav } from './stores/nav.svelte';
import { setup } from './stores/setup.svelte';
import { deferred, fakeBackend, flush } from './test/backend';
import { fileReport, quickConfig, runSummary } from './test/fixtures';

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
    // Quick is applied first; the other presets load too, so the picker can show their lengths.
    expect(b.calls.find((c) => c.cmd === 'default_train_config')?.args).toEqual({ preset: 'quick' });
    await waitFor(() => expect(b.calls.filter((c) => c.cmd === 'default_train_config')).toHaveLength(3));
    await fireEvent.click(screen.getByTestId('nav-model'));
    expect(screen.getByRole('heading', { level: 1 }).textContent).toBe('Model');
    await fireEvent.click(screen.getByTestId('nav-runs'));
    expect(screen.getByRole('heading', { level: 1 }).textContent).toBe('Runs');
  });

  it('the page tabs move with the arrow keys, Home and End, one Tab stop at a time', async () => {
    nav.page = 'data';
    fakeBackend(base);
    render(App);
    const tabs = screen.getAllByRole('tab');
    expect(tabs.map((t) => t.getAttribute('aria-selected'))).toEqual(['true', 'false', 'false', 'false', 'false', 'false']);
    expect(tabs.map((t) => t.tabIndex)).toEqual([0, -1, -1, -1, -1, -1]);
    // Name and description are separate: the hint describes, it does not name.
    expect(screen.getByRole('tab', { name: 'Model' }).getAttribute('aria-describedby')).toBe('tab-hint-model');

    tabs[0].focus();
    await fireEvent.keyDown(tabs[0], { key: 'ArrowDown' });
    expect(screen.getByRole('heading', { level: 1 }).textContent).toBe('Model');
    expect(document.activeElement).toBe(screen.getByTestId('nav-model'));
    expect(screen.getAllByRole('tab').map((t) => t.tabIndex)).toEqual([-1, 0, -1, -1, -1, -1]);

    await fireEvent.keyDown(document.activeElement!, { key: 'End' });
    expect(screen.getByRole('heading', { level: 1 }).textContent).toBe('Runs');
    expect(document.activeElement).toBe(screen.getByTestId('nav-runs'));
    await fireEvent.keyDown(document.activeElement!, { key: 'ArrowDown' }); // wraps round
    expect(document.activeElement).toBe(screen.getByTestId('nav-data'));
    await fireEvent.keyDown(document.activeElement!, { key: 'ArrowUp' });
    expect(document.activeElement).toBe(screen.getByTestId('nav-runs'));
    await fireEvent.keyDown(document.activeElement!, { key: 'Home' });
    expect(document.activeElement).toBe(screen.getByTestId('nav-data'));
    expect(screen.getByRole('tabpanel', { name: 'Data' })).toBeTruthy();
  });

  it('presets follow the data: the health check caps Quick, and Train says so in words', async () => {
    nav.page = 'data';
    setup.config = null;
    setup.preset = null;
    setup.presets = {};
    dataset.files = [fileReport({ path: '/d/small.txt', name: 'small.txt' })];
    const steps = { quick: 200, balanced: 1000, thorough: 4000 } as const;
    fakeBackend({
      ...base,
      default_train_config: ({ preset }) => quickConfig({ steps: steps[preset as keyof typeof steps] }),
      data_report: () => ({
        files: [], filesOk: 1, filesFailed: 0, documents: 1, examples: 0, chars: 20_000, words: 3_000, tokens: 8_000,
        trainTokens: 7_200, valTokens: 800, duplicateShare: 0, tokensPerWord: 1.3, dropped: [], piiHits: [],
        warnings: ['Only 8 000 tokens: the model will memorise rather than generalise; we suggest at most 42 steps, or add more text.'],
        suggestions: { quick_steps: 20, balanced_steps: 42, thorough_steps: 71 },
      }),
    });
    render(App);
    await waitFor(() => expect(setup.config?.steps).toBe(20), { timeout: 3000 });
    await fireEvent.click(await screen.findByRole('button', { name: 'Balanced: 42 steps' }));
    await waitFor(() => expect(setup.config?.steps).toBe(42));
    await fireEvent.click(screen.getByTestId('nav-train'));
    expect(screen.getByRole('radio', { name: 'Balanced: 42 steps (your data is small)' }).getAttribute('aria-checked')).toBe('true');
    expect(screen.getByRole('radio', { name: 'Thorough: 71 steps (your data is small)' })).toBeTruthy();
    dataset.files = [];
  });

  it('a launch brings back the last files (inspected again) and settings, and remembers changes', async () => {
    nav.page = 'data';
    setup.config = null;
    setup.presets = {};
    setup.restored = false;
    dataset.files = [];
    // Remembered for this data folder (app_info's home is /h); another folder's memory is ignored.
    localStorage.setItem('tunesmith.dataFiles@/h', JSON.stringify(['/d/notes.txt', '/d/gone.txt']));
    localStorage.setItem('tunesmith.training@/h', JSON.stringify({ preset: 'thorough', settings: { lr: 2e-4, seed: 9 }, fittedSteps: null }));
    localStorage.setItem('tunesmith.dataFiles@/other', JSON.stringify(['/elsewhere/x.txt']));
    const b = fakeBackend({
      ...base,
      inspect_files: ({ paths }) =>
        (paths as string[]).map((path) =>
          path.endsWith('gone.txt')
            ? fileReport({ path, name: 'gone.txt', status: 'error', error: 'cannot be found; add it again from its new place' })
            : fileReport({ path, name: 'notes.txt' }),
        ),
      data_report: () => new Promise(() => {}),
    });
    render(App);
    expect(await screen.findAllByTestId('file-row')).toHaveLength(2);
    expect(b.last('inspect_files')).toEqual({ paths: ['/d/notes.txt', '/d/gone.txt'] });
    expect(screen.getByTestId('file-error').textContent).toContain('cannot be found');
    await waitFor(() => expect(setup.config?.seed).toBe(9));
    expect(setup.preset).toBe('thorough');
    expect(b.calls.find((c) => c.cmd === 'default_train_config')?.args).toEqual({ preset: 'thorough' });

    await fireEvent.click(screen.getByRole('button', { name: 'Remove gone.txt' }));
    expect(JSON.parse(localStorage.getItem('tunesmith.dataFiles@/h')!)).toEqual(['/d/notes.txt']);
    setup.config!.seed = 11;
    await waitFor(() => expect(JSON.parse(localStorage.getItem('tunesmith.training@/h')!).settings.seed).toBe(11));
    dataset.files = [];
  });

  it('Chat on the Runs page opens Chat talking to that run', async () => {
    nav.page = 'runs';
    const older = runSummary({ name: 'older', path: '/runs/older', updatedUnix: 1 });
    const newer = runSummary({ name: 'newer', path: '/runs/newer', updatedUnix: 2 });
    fakeBackend({ ...base, list_runs: () => [older, newer], list_chats: () => [] });
    render(App);
    const rows = await screen.findAllByTestId('run-row');
    expect(rows[1].textContent).toContain('older');
    await fireEvent.click(within(rows[1]).getByRole('button', { name: 'Chat' }));
    await waitFor(() => expect(screen.getByRole('heading', { level: 1 }).textContent).toBe('Chat'));
    await flush();
    // Not the newest run Chat would pick by itself: the one asked for.
    expect((screen.getByTestId('chat-target') as HTMLSelectElement).value).toBe('run:/runs/older');
  });

  it('asks before closing during training and stops, saves and quits on yes', async () => {
    (globalThis as { isTauri?: boolean }).isTauri = true;
    mockWindows('main');
    const b = fakeBackend({ ...base, stop_and_quit: () => null, keep_training: () => null }, { events: true });
    render(App);
    await flush();
    await emit('close-requested');
    const dialog = await screen.findByTestId('confirm-dialog');
    expect(dialog.textContent).toContain('Training is running. Stop it, save a checkpoint and quit?');

    // "Keep training" tells the backend, so that the next close asks again instead of quitting.
    await fireEvent.click(screen.getByTestId('confirm-cancel'));
    expect(screen.queryByTestId('confirm-dialog')).toBeNull();
    expect(b.calls.some((c) => c.cmd === 'stop_and_quit')).toBe(false);
    expect(b.calls.some((c) => c.cmd === 'keep_training')).toBe(true);

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

  it('shows "saving" when a second close quits without waiting for an answer', async () => {
    (globalThis as { isTauri?: boolean }).isTauri = true;
    mockWindows('main');
    fakeBackend({ ...base }, { events: true });
    render(App);
    await flush();
    await emit('close-requested');
    await screen.findByTestId('confirm-dialog');
    // The backend stops, saves and quits by itself (a second close); the page just says so.
    await emit('closing');
    expect((await screen.findByTestId('closing-saving')).textContent).toContain('Saving a checkpoint');
    expect(screen.queryByTestId('confirm-dialog')).toBeNull();
  });
});
