// The wire contract: command names and camelCase argument keys exactly as the Rust handlers take them.
import { Channel } from '@tauri-apps/api/core';
import { describe, expect, it, vi } from 'vitest';
import { fakeBackend, reject, send } from '../test/backend';
import { quickConfig } from '../test/fixtures';
import * as ipc from './commands';
import type { Event } from './types';

describe('commands', () => {
  it('send the documented names and argument keys', async () => {
    const b = fakeBackend(
      Object.fromEntries(
        ['app_info', 'inspect_files', 'demo_dataset', 'default_train_config', 'stop_job', 'list_runs', 'run_metrics', 'rename_run', 'delete_run', 'list_chats', 'save_chat', 'stop_and_quit', 'keep_training'].map((c) => [c, () => null]),
      ),
    );
    const chat = { id: 'c1', title: 't', mode: 'chat' as const, messages: [], updatedUnix: 1 };
    await ipc.appInfo();
    await ipc.inspectFiles(['/a.txt']);
    await ipc.demoDataset();
    await ipc.defaultTrainConfig('balanced');
    await ipc.stopJob('j1');
    await ipc.listRuns();
    await ipc.runMetrics('/r');
    await ipc.renameRun('/r', 'new');
    await ipc.deleteRun('/r');
    await ipc.listChats('/r');
    await ipc.saveChat('/r', chat);
    await ipc.stopAndQuit();
    await ipc.keepTraining();
    expect(b.calls.map((c) => [c.cmd, c.args])).toEqual([
      ['app_info', {}],
      ['inspect_files', { paths: ['/a.txt'] }],
      ['demo_dataset', {}],
      ['default_train_config', { preset: 'balanced' }],
      ['stop_job', { jobId: 'j1' }],
      ['list_runs', {}],
      ['run_metrics', { runPath: '/r' }],
      ['rename_run', { runPath: '/r', newName: 'new' }],
      ['delete_run', { runPath: '/r' }],
      ['list_chats', { runPath: '/r' }],
      ['save_chat', { runPath: '/r', chat }],
      ['stop_and_quit', {}],
      ['keep_training', {}],
    ]);
  });

  it('streamed commands pass a Channel whose messages reach the callback in order', async () => {
    const b = fakeBackend({
      start_training: ({ onEvent }) => {
        // Delivered out of order on purpose: the Channel reorders by index.
        const ch = onEvent as Channel<Event>;
        const internals = (window as unknown as { __TAURI_INTERNALS__: { runCallback: (id: number, d: unknown) => void } }).__TAURI_INTERNALS__;
        internals.runCallback(ch.id, { index: 1, message: { type: 'finished', summary: null } });
        internals.runCallback(ch.id, { index: 0, message: { type: 'log', level: 'info', message: 'hi' } });
        return { jobId: 'j1', runPath: '/runs/x' };
      },
      resume_training: () => ({ jobId: 'j2', runPath: '/runs/x' }),
      generate: () => [],
      download_model: () => '/cache/gpt2',
      current_job: () => null,
      test_hooks: () => false,
    });
    const seen: Event[] = [];
    const cfg = quickConfig({ data: ['/a.txt'] });
    await expect(ipc.startTraining('x', cfg, (e) => seen.push(e))).resolves.toEqual({ jobId: 'j1', runPath: '/runs/x' });
    expect(seen.map((e) => e.type)).toEqual(['log', 'finished']);
    expect(b.last('start_training')).toMatchObject({ name: 'x', config: cfg });
    expect(b.last('start_training')?.onEvent).toBeInstanceOf(Channel);

    await ipc.resumeTraining('/runs/x', () => {});
    expect(Object.keys(b.last('resume_training')!)).toEqual(['runPath', 'onEvent']);
    await ipc.generate('g1', 'gpt2', { prompt: 'p' } as never, () => {});
    expect(Object.keys(b.last('generate')!)).toEqual(['jobId', 'model', 'config', 'onEvent']);
    await expect(ipc.downloadModel('d1', 'gpt2', () => {})).resolves.toBe('/cache/gpt2');
    expect(Object.keys(b.last('download_model')!)).toEqual(['jobId', 'id', 'onEvent']);
    expect(b.last('download_model')).toMatchObject({ jobId: 'd1', id: 'gpt2' });
    await expect(ipc.currentJob('train', () => {})).resolves.toBeNull();
    expect(b.last('current_job')?.kind).toBe('train');
    expect(b.last('current_job')?.onEvent).toBeInstanceOf(Channel);
    await expect(ipc.testHooks()).resolves.toBe(false);
  });

  it('rejections carry the CommandError unchanged', async () => {
    fakeBackend({ start_training: () => Promise.reject(reject('busy', 'Another job is running.')) });
    await expect(ipc.startTraining('x', quickConfig(), vi.fn())).rejects.toEqual({ kind: 'busy', message: 'Another job is running.' });
  });

  it('the test helper delivers events like the backend', async () => {
    const seen: Event[] = [];
    fakeBackend({
      generate: ({ onEvent }) => {
        send(onEvent, [{ type: 'token', text: 'a' }, { type: 'token', text: 'b' }]);
        return [];
      },
    });
    await ipc.generate('g', 'm', {} as never, (e) => seen.push(e));
    expect(seen).toEqual([{ type: 'token', text: 'a' }, { type: 'token', text: 'b' }]);
  });
});
