import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { fakeBackend, flush, reject, send } from '../test/backend';
import { fileReport, quickConfig } from '../test/fixtures';
import type { TrainConfig } from '../ipc/types';
import { chatSession } from '../stores/chatSession.svelte';
import { dataset } from '../stores/dataset.svelte';
import { estimator } from '../stores/estimate.svelte';
import { nav } from '../stores/nav.svelte';
import { DEFAULT_MODEL } from '../stores/models';
import { setup } from '../stores/setup.svelte';
import { trainer } from '../stores/trainer.svelte';
import { initialTraining } from '../stores/training';
import TrainView from './TrainView.svelte';

// uPlot draws on a canvas, which jsdom lacks; the chart's data is checked through its data-points.
vi.mock('uplot', () => ({
  default: class {
    setData() {}
    setSize() {}
    destroy() {}
  },
}));

beforeEach(() => {
  dataset.files = [fileReport()];
  setup.config = quickConfig();
  setup.preset = 'quick';
  setup.model = DEFAULT_MODEL;
  trainer.state = initialTraining();
  trainer.job = null;
  trainer.run = null;
  trainer.error = null;
  estimator.result = null;
  estimator.measured = null;
  estimator.error = null;
});

describe('TrainView', () => {
  it('Start sends the prepared config, then the page follows the job’s events', async () => {
    let channel: unknown;
    const b = fakeBackend({
      start_training: ({ onEvent }) => ((channel = onEvent), { jobId: 'j1', runPath: '/runs/demo' }),
      stop_job: () => null,
    });
    render(TrainView);
    await fireEvent.click(screen.getByTestId('start-training'));
    await flush();
    const sent = b.last('start_training')!.config as TrainConfig;
    expect(sent.model).toEqual({ scratch: 'tiny' });
    expect(sent.data).toEqual(['/data/business-rules.md']);
    expect(sent.steps).toBe(200);
    expect(b.last('start_training')!.name).toMatch(/^business-rules-\d{4}-\d{4}$/);

    send(channel, [
      { type: 'trainStep', step: 10, total: 200, loss: 6.1, lr: 1e-3, tokensPerSec: 2400, etaSecs: 95, epoch: 0.05 },
      { type: 'trainStep', step: 20, total: 200, loss: 5.2, lr: 1e-3, tokensPerSec: 2500, etaSecs: 85, epoch: 0.1 },
      { type: 'eval', step: 20, valLoss: 5.4, perplexity: 221 },
      { type: 'sample', step: 20, text: 'When a customer the refund' },
      { type: 'checkpoint', step: 20, path: '/runs/demo/checkpoints/step-20' },
    ]);
    await flush();
    expect(screen.getByTestId('step-counter').textContent).toBe('Step 20 of 200');
    expect(screen.getByText(/1 min 25 s left/)).toBeTruthy();
    expect(screen.getByTestId('loss-chart').dataset.points).toBe('2');
    expect(screen.getAllByTestId('checkpoint-item').map((e) => e.textContent)).toEqual(['Step 20']);
    expect(screen.getByTestId('sample').textContent).toContain('When a customer the refund');

    await fireEvent.click(screen.getByTestId('stop-training'));
    expect(b.last('stop_job')).toEqual({ jobId: 'j1' });
    send(channel, [{ type: 'finished', summary: {} }]);
    await flush();
    expect(screen.getByTestId('resume-training')).toBeTruthy();
  });

  it('the doctor’s findings show as text with their remedies, which act', async () => {
    let channel: unknown;
    const b = fakeBackend({
      start_training: ({ onEvent }) => ((channel = onEvent), { jobId: 'j1', runPath: '/runs/demo' }),
      stop_job: () => null,
      run_metrics: () => ({ steps: [{ step: 10, loss: 6 }], evals: [], samples: [], findings: [] }),
      resume_training_from: () => ({ jobId: 'j2', runPath: '/runs/demo' }),
    });
    render(TrainView);
    await fireEvent.click(screen.getByTestId('start-training'));
    await flush();
    expect(screen.getByTestId('doctor-healthy')).toBeTruthy();
    send(channel, [
      { type: 'trainStep', step: 30, total: 200, loss: 9.1, lr: 1e-3, tokensPerSec: 2400, etaSecs: 95, epoch: 0.05 },
      { type: 'finding', kind: 'overfitting', step: 30, message: 'Memorising <img src=x onerror=alert(1)>', remedy: { action: 'stopKeepBest', step: 20 } },
      { type: 'finding', kind: 'diverging', step: 30, message: 'The training loss is climbing.', remedy: { action: 'resumeFrom', step: 20, lr: 3e-4 } },
    ]);
    await flush();
    const found = screen.getAllByTestId('finding');
    expect(found.map((f) => f.dataset.kind)).toEqual(['overfitting', 'diverging']);
    expect(found[0].textContent).toContain('<img src=x onerror=alert(1)>');
    expect(document.querySelector('[data-testid="doctor"] img')).toBeNull();
    // While training, going back needs a stop first; keeping the best stops now.
    const goBack = within(found[1]).getByTestId('remedy') as HTMLButtonElement;
    expect(goBack.disabled).toBe(true);
    await fireEvent.click(within(found[0]).getByTestId('remedy'));
    await flush();
    expect(b.calls.filter((c) => c.cmd === 'stop_job').length).toBe(1);
    send(channel, [{ type: 'finished', summary: {} }]);
    await flush();
    expect(goBack.disabled).toBe(false);
    await fireEvent.click(goBack);
    await flush();
    expect(b.last('resume_training_from')).toMatchObject({ runPath: '/runs/demo', step: 20, lr: 3e-4 });
  });

  it('the estimate measures the prepared config, says time and memory, and sets steps for minutes', async () => {
    const b = fakeBackend({
      estimate_training: () => ({
        secsPerStep: 0.5,
        steps: 200,
        totalSecs: 120,
        peakBytes: 3.1e9,
        machineTotalBytes: 16e9,
        machineAvailableBytes: 12e9,
        fits: true,
        summary: 'about 2 minutes for 200 steps (0.50 s a step), about 3.1 GB of the 12.0 GB free',
      }),
    });
    render(TrainView);
    await fireEvent.click(screen.getByTestId('estimate-run'));
    await flush();
    expect((b.last('estimate_training')!.config as TrainConfig).steps).toBe(200);
    expect(screen.getByTestId('estimate-summary').textContent).toContain('about 2 minutes for 200 steps, about 3.1 GB of the 12.0 GB free');
    await fireEvent.input(screen.getByTestId('estimate-minutes'), { target: { value: '10' } });
    await fireEvent.click(screen.getByTestId('estimate-apply'));
    await flush();
    // 0.6 s a step (validation included): 10 minutes is 1,000 steps, and the estimate still holds.
    expect(setup.config!.steps).toBe(1000);
    expect(screen.getByTestId('estimate-summary').textContent).toContain('about 10 minutes for 1,000 steps');
    // Another batch size changes the pace: the old figures are not shown as current.
    setup.config = { ...setup.config!, batch_size: 16 };
    await flush();
    expect(screen.queryByTestId('estimate-summary')).toBeNull();
    expect(screen.getByTestId('estimate').textContent).toContain('settings changed');
  });

  it('a busy backend’s refusal is shown where Start was pressed', async () => {
    fakeBackend({ start_training: () => Promise.reject(reject('busy', 'A generation is running; stop it before training.')) });
    render(TrainView);
    await fireEvent.click(screen.getByTestId('start-training'));
    const err = await screen.findByTestId('error-message');
    expect(err.textContent).toContain('A generation is running; stop it before training.');
    expect(err.textContent).toContain('Another job is running');
    expect(screen.queryByTestId('stop-training')).toBeNull();
  });

  it('a bad setting is explained next to its field and blocks Start', async () => {
    fakeBackend({});
    render(TrainView);
    const lr = screen.getByTestId('cfg-lr') as HTMLInputElement;
    await fireEvent.input(lr, { target: { value: '2' } });
    expect(screen.getByTestId('cfg-error-lr').textContent).toMatch(/above 0 and below 1/);
    expect((screen.getByTestId('start-training') as HTMLButtonElement).disabled).toBe(true);
    await fireEvent.input(lr, { target: { value: '0.0005' } });
    expect(screen.queryByTestId('cfg-error-lr')).toBeNull();
    expect((screen.getByTestId('start-training') as HTMLButtonElement).disabled).toBe(false);
  });

  it('each setting is named by its label and described by its help text', () => {
    fakeBackend({});
    render(TrainView);
    const steps = screen.getByRole('spinbutton', { name: 'Steps' });
    const help = document.getElementById(steps.getAttribute('aria-describedby')!);
    expect(help?.textContent).toMatch(/^How many learning steps to take/);
    expect(screen.getByRole('button', { name: 'About Steps' }).getAttribute('aria-describedby')).toBe(help?.id);
    expect(screen.getByRole('checkbox', { name: 'Train only the inner layers' }).getAttribute('aria-describedby')).toBe('cfg-help-only_train_transformer_layers');
    expect(screen.getByRole('textbox', { name: /Run name/ }).getAttribute('aria-describedby')).toBe('run-name-help');
  });

  it('the LoRA switch turns adapters on with rank 8 and explains a bad rank', async () => {
    fakeBackend({});
    render(TrainView);
    const lora = screen.getByRole('checkbox', { name: 'Adapt with LoRA' });
    expect(lora.getAttribute('aria-describedby')).toBe('cfg-help-lora');
    expect(screen.queryByRole('spinbutton', { name: 'LoRA rank' })).toBeNull();
    await fireEvent.click(lora);
    const rank = (await screen.findByRole('spinbutton', { name: 'LoRA rank' })) as HTMLInputElement;
    expect(rank.value).toBe('8');
    await fireEvent.input(rank, { target: { value: '0' } });
    await waitFor(() => expect(screen.getByTestId('cfg-error-lora').textContent).toMatch(/LoRA|rank/));
    await fireEvent.click(lora);
    await waitFor(() => expect(screen.queryByRole('spinbutton', { name: 'LoRA rank' })).toBeNull());
  });

  it('a setting’s error joins its description', async () => {
    fakeBackend({});
    render(TrainView);
    const lr = screen.getByRole('spinbutton', { name: 'Learning rate' });
    await fireEvent.input(lr, { target: { value: '2' } });
    expect(lr.getAttribute('aria-describedby')).toBe('cfg-help-lr cfg-error-lr');
  });

  it('the presets say how long they train on this data', () => {
    setup.presets = { quick: quickConfig(), balanced: quickConfig({ steps: 1000 }), thorough: quickConfig({ steps: 4000 }) };
    setup.suggestions = { quick_steps: 47, balanced_steps: 141, thorough_steps: 2000 };
    fakeBackend({});
    render(TrainView);
    expect(screen.getByRole('radio', { name: 'Quick: 47 steps (your data is small)' }).getAttribute('aria-checked')).toBe('true');
    expect(screen.getByRole('radio', { name: 'Thorough: 2,000 steps (your data is small)' })).toBeTruthy();
    setup.presets = {};
    setup.suggestions = null;
  });

  it('“Chat with this model” chooses the run shown, even when Chat had another model', async () => {
    chatSession.target = { kind: 'base', source: 'gpt2', label: 'GPT-2' };
    trainer.run = { path: '/runs/notes', name: 'notes' };
    trainer.state = { ...initialTraining(), status: 'finished', checkpoints: [{ step: 200, path: '/runs/notes/checkpoints/step-200' }] };
    fakeBackend({ list_chats: () => [] });
    nav.page = 'train';
    render(TrainView);
    await fireEvent.click(screen.getByTestId('chat-with-run'));
    await waitFor(() => expect(nav.page).toBe('chat'));
    expect(chatSession.target).toEqual({ kind: 'run', path: '/runs/notes', name: 'notes' });
  });

  it('without data it says where to add some', async () => {
    dataset.files = [];
    fakeBackend({});
    render(TrainView);
    expect((screen.getByTestId('start-training') as HTMLButtonElement).disabled).toBe(true);
    expect(within(screen.getByTestId('config-errors')).getByText(/Data page/)).toBeTruthy();
  });

  it('a failure during training is shown with the engine’s sentence', async () => {
    let channel: unknown;
    fakeBackend({ start_training: ({ onEvent }) => ((channel = onEvent), { jobId: 'j1', runPath: '/runs/x' }) });
    render(TrainView);
    await fireEvent.click(screen.getByTestId('start-training'));
    await flush();
    send(channel, [{ type: 'failed', kind: 'config', message: 'the setting `block_size` is 4096; this model reads at most 1024 tokens' }]);
    await flush();
    const err = screen.getByTestId('error-message');
    expect(err.textContent).toContain('reads at most 1024 tokens');
    expect(err.textContent).toContain('Change the setting');
  });
});
