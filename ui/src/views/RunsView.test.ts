import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { beforeEach, describe, expect, it } from 'vitest';
import { fakeBackend, reject } from '../test/backend';
import { runSummary } from '../test/fixtures';
import { chatSession } from '../stores/chatSession.svelte';
import { nav } from '../stores/nav.svelte';
import { runs } from '../stores/runsList.svelte';
import { sharing } from '../stores/sharing.svelte';
import { trainer } from '../stores/trainer.svelte';
import { initialTraining } from '../stores/training';
import RunsView from './RunsView.svelte';

const done = runSummary({ name: 'done', path: '/runs/done', updatedUnix: 3 });
const stopped = runSummary({ name: 'halfway', path: '/runs/halfway', status: 'stopped', resumable: true, step: 80, checkpoints: [50], updatedUnix: 2 });

// The stores are app-wide singletons: each test starts from an empty list and no job.
beforeEach(() => {
  runs.list = [];
  trainer.state = initialTraining();
  trainer.job = null;
  trainer.run = null;
  sharing.exporting = null;
  sharing.served = null;
  sharing.serveError = null;
});

describe('RunsView', () => {
  it('lists runs newest first and marks the resumable ones', async () => {
    fakeBackend({ list_runs: () => [stopped, done] });
    render(RunsView);
    const rows = await screen.findAllByTestId('run-row');
    expect(rows.map((r) => r.querySelector('strong')?.textContent)).toEqual(['done', 'halfway']);
    expect(within(rows[0]).queryByTestId('resumable')).toBeNull();
    expect(within(rows[1]).getByTestId('resumable')).toBeTruthy();
    expect(rows[1].textContent).toContain('80 / 200');
  });

  it('deletes only after confirmation', async () => {
    const b = fakeBackend({ list_runs: () => [done], delete_run: () => null });
    render(RunsView);
    const row = await screen.findByTestId('run-row');
    await fireEvent.click(within(row).getByText('Delete'));
    expect(screen.getByTestId('confirm-dialog').textContent).toContain('“done”');
    await fireEvent.click(screen.getByTestId('confirm-cancel'));
    expect(b.calls.some((c) => c.cmd === 'delete_run')).toBe(false);

    await fireEvent.click(within(row).getByText('Delete'));
    await fireEvent.click(screen.getByTestId('confirm-yes'));
    await waitFor(() => expect(screen.queryAllByTestId('run-row')).toHaveLength(0));
    expect(b.last('delete_run')).toEqual({ runPath: '/runs/done' });
  });

  it('renames in place and shows a refusal in place', async () => {
    const b = fakeBackend({
      list_runs: () => [done],
      rename_run: ({ newName }) => (newName === 'taken' ? Promise.reject(reject('config', 'A run called `taken` already exists; pick another name.')) : { ...done, name: newName as string }),
    });
    render(RunsView);
    const row = await screen.findByTestId('run-row');
    await fireEvent.click(within(row).getByText('Rename'));
    const input = within(row).getByLabelText('New name');
    await fireEvent.input(input, { target: { value: 'taken' } });
    await fireEvent.click(within(row).getByText('Save'));
    expect((await screen.findByTestId('error-message')).textContent).toContain('already exists');

    await fireEvent.input(input, { target: { value: 'refunds v1' } });
    await fireEvent.click(within(row).getByText('Save'));
    await waitFor(() => expect(row.querySelector('strong')?.textContent).toBe('refunds v1'));
    expect(b.last('rename_run')).toEqual({ runPath: '/runs/done', newName: 'refunds v1' });
  });

  it('shows where each model came from in plain words, the source on hover', async () => {
    fakeBackend({ list_runs: () => [done, runSummary({ name: 'g', path: '/runs/g', model: 'gpt2', updatedUnix: 1 })] });
    render(RunsView);
    await screen.findAllByTestId('run-row');
    const models = screen.getAllByTestId('run-model');
    expect(models.map((m) => m.textContent)).toEqual(['New tiny model (trained from scratch)', 'GPT-2 (124M)']);
    expect(models[0].getAttribute('title')).toBe('scratch:tiny');
  });

  it('an interrupted run says so in words and offers Resume', async () => {
    const b = fakeBackend({
      list_runs: () => [runSummary({ name: 'crashed', path: '/runs/crashed', status: 'interrupted', resumable: true, step: 120, checkpoints: [100] })],
      run_metrics: () => ({ steps: [], evals: [], samples: [] }),
      resume_training: () => ({ jobId: 'j', runPath: '/runs/crashed' }),
    });
    render(RunsView);
    const row = await screen.findByTestId('run-row');
    expect(within(row).getByTestId('run-status').textContent?.trim()).toBe('Stopped before the end — can be resumed');
    await fireEvent.click(within(row).getByRole('button', { name: 'Resume' }));
    await waitFor(() => expect(b.last('resume_training')?.runPath).toBe('/runs/crashed'));
    expect(nav.page).toBe('train');
  });

  it('Chat opens the Chat page with that run chosen; a run without a checkpoint has no Chat', async () => {
    const fresh = runSummary({ name: 'fresh', path: '/runs/fresh', status: 'failed', checkpoints: [], updatedUnix: 1 });
    const b = fakeBackend({ list_runs: () => [done, fresh], list_chats: () => [] });
    nav.page = 'runs';
    render(RunsView);
    const rows = await screen.findAllByTestId('run-row');
    expect(within(rows[1]).queryByRole('button', { name: 'Chat' })).toBeNull();
    await fireEvent.click(within(rows[0]).getByRole('button', { name: 'Chat' }));
    await waitFor(() => expect(nav.page).toBe('chat'));
    expect(chatSession.target).toEqual({ kind: 'run', path: '/runs/done', name: 'done' });
    expect(b.last('list_chats')).toEqual({ runPath: '/runs/done' });
  });

  it('Resume continues the run and goes to the Train page', async () => {
    const b = fakeBackend({
      list_runs: () => [stopped],
      run_metrics: () => ({ steps: [], evals: [], samples: [] }),
      resume_training: () => ({ jobId: 'j', runPath: '/runs/halfway' }),
    });
    render(RunsView);
    await fireEvent.click(await screen.findByRole('button', { name: 'Resume' }));
    await waitFor(() => expect(b.last('resume_training')?.runPath).toBe('/runs/halfway'));
    expect(nav.page).toBe('train');
  });

  it('Export: the formats in words, LoRA-only choices only for LoRA runs, the check shown as text', async () => {
    const lora = runSummary({ name: 'lora', path: '/runs/lora', lora: true, updatedUnix: 1 });
    const b = fakeBackend({
      list_runs: () => [done, lora],
      serving: () => null,
      export_run: () => ({
        format: 'gguf',
        out: '/home/u/.tunesmith/exports/done-gguf-q4_k_m.gguf',
        files: ['done-gguf-q4_k_m.gguf'],
        bytes: 2_500_000,
        verification: { verified: false, outcome: 'close', summary: 'Close: the q4_k_m export … <img src=x onerror=alert(1)>', quant: 'q4_k_m', agreement: 0.9, prompts: [] },
        nextStep: null,
      }),
    });
    render(RunsView);
    const rows = await screen.findAllByTestId('run-row');
    await fireEvent.click(within(rows[0]).getByRole('button', { name: 'Export' }));
    let panel = screen.getByTestId('export-panel');
    expect(within(panel).queryByLabelText(/LoRA adapter only/)).toBeNull();
    await fireEvent.click(within(panel).getByLabelText(/GGUF file/));
    await fireEvent.change(within(panel).getByTestId('export-quant'), { target: { value: 'q4_k_m' } });
    await fireEvent.click(within(panel).getByRole('button', { name: 'Export' }));
    await waitFor(() => expect(b.last('export_run')).toMatchObject({ runPath: '/runs/done', format: 'gguf', quant: 'q4_k_m' }));
    const check = await screen.findByTestId('export-check');
    // Model output inside the summary stays text.
    expect(check.textContent).toContain('<img src=x onerror=alert(1)>');
    expect(check.querySelector('img')).toBeNull();
    expect(within(check).getByText('close')).toBeTruthy();
    await fireEvent.click(within(panel).getByRole('button', { name: 'Close' }));
    await fireEvent.click(within(rows[1]).getByRole('button', { name: 'Export' }));
    panel = screen.getByTestId('export-panel');
    expect(within(panel).getByLabelText(/LoRA adapter only/)).toBeTruthy();
    await fireEvent.click(within(panel).getByLabelText(/Hugging Face/));
    expect(within(panel).queryByTestId('export-quant')).toBeNull();
  });

  it('Serve shows the address and copyable examples, and Stop serving ends it', async () => {
    const info = { runPath: '/runs/done', model: 'done', address: 'http://127.0.0.1:8080/v1', curl: 'curl http://127.0.0.1:8080/v1/chat/completions', python: 'from openai import OpenAI' };
    const b = fakeBackend({ list_runs: () => [done], serving: () => null, start_serving: () => info, stop_serving: () => null });
    render(RunsView);
    const row = await screen.findByTestId('run-row');
    await fireEvent.click(within(row).getByRole('button', { name: 'Serve' }));
    expect((await screen.findByTestId('serve-address')).textContent).toBe('http://127.0.0.1:8080/v1');
    const examples = screen.getAllByTestId('copy-text').map((e) => e.textContent);
    expect(examples).toEqual([info.curl, info.python]);
    await fireEvent.click(within(row).getByTestId('stop-serving'));
    await waitFor(() => expect(screen.queryByTestId('serve-panel')).toBeNull());
    expect(b.calls.some((c) => c.cmd === 'stop_serving')).toBe(true);
  });
});
