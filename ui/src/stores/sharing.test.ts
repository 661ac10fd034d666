import { describe, expect, it } from 'vitest';
import { deferred, fakeBackend, flush, reject, send } from '../test/backend';
import type { ExportReport, ServeInfo } from '../ipc/types';
import { Sharing } from './sharing.svelte';

const report: ExportReport = {
  format: 'ollama',
  out: '/home/u/.tunesmith/exports/notes-ollama-q8_0',
  files: ['model.gguf', 'Modelfile', 'verification.json'],
  bytes: 145_000_000,
  verification: { verified: true, outcome: 'verified', summary: 'Verified: reloaded, the export continues all 3 test prompts exactly as the model does.', quant: 'q8_0', agreement: 1, prompts: [] },
  nextStep: 'ollama create notes -f /home/u/.tunesmith/exports/notes-ollama-q8_0/Modelfile',
};

const info: ServeInfo = { runPath: '/runs/notes', model: 'notes', address: 'http://127.0.0.1:8080/v1', curl: 'curl …', python: 'from openai import OpenAI' };

describe('Sharing', () => {
  it('an export is a job: progress shows, Stop reaches it, and the report arrives', async () => {
    const answer = deferred<ExportReport>();
    let channel: unknown;
    const b = fakeBackend({ export_run: ({ onEvent }) => ((channel = onEvent), answer.promise), stop_job: () => null });
    const s = new Sharing();
    const running = s.export('/runs/notes', 'ollama', 'q8_0');
    await flush();
    expect(b.last('export_run')).toMatchObject({ runPath: '/runs/notes', format: 'ollama', quant: 'q8_0' });
    send(channel, [{ type: 'progress', stage: 'Converting to q8_0', done: 3, total: 30, unit: 'tensors' }]);
    expect(s.exporting).toMatchObject({ status: 'running', stage: 'Converting to q8_0', done: 3, total: 30 });
    expect(s.busy).toBe(true);
    await s.stopExport();
    expect(b.last('stop_job')).toEqual({ jobId: b.last('export_run')?.jobId });
    answer.resolve(report);
    await running;
    expect(s.exporting).toMatchObject({ status: 'done', report });
  });

  it('a stopped export leaves no entry; a refused one keeps its plain message', async () => {
    fakeBackend({ export_run: () => Promise.reject(reject('cancelled', 'stopped by the user')) });
    const s = new Sharing();
    await s.export('/runs/notes', 'gguf', 'f32');
    expect(s.exporting).toBeNull();
    fakeBackend({ export_run: () => Promise.reject(reject('unsupported', 'a PEFT export cannot hold this model: export it as hf or gguf instead')) });
    await s.export('/runs/notes', 'peft', null);
    expect(s.exporting).toMatchObject({ status: 'failed', error: { kind: 'unsupported' } });
  });

  it('serves one model, shows it after a reload, and stops it', async () => {
    const b = fakeBackend({ start_serving: () => info, serving: () => info, stop_serving: () => null });
    const s = new Sharing();
    await s.serve('/runs/notes');
    expect(b.last('start_serving')).toEqual({ runPath: '/runs/notes' });
    expect(s.served).toEqual(info);
    const reloaded = new Sharing();
    await reloaded.refresh();
    expect(reloaded.served).toEqual(info);
    await s.stop();
    expect(s.served).toBeNull();
    expect(b.calls.some((c) => c.cmd === 'stop_serving')).toBe(true);
  });
});
