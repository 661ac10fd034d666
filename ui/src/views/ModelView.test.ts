import { fireEvent, render, screen, within } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { deferred, fakeBackend, flush, reject, send } from '../test/backend';
import { downloads } from '../stores/downloads.svelte';
import { setup } from '../stores/setup.svelte';
import ModelView from './ModelView.svelte';
import { quickConfig } from '../test/fixtures';
import type { TrainConfig } from '../ipc/types';

describe('ModelView', () => {
  it('defaults to a tiny model from scratch and shows sizes', () => {
    fakeBackend({});
    render(ModelView);
    expect(setup.model).toEqual({ kind: 'scratch', size: 'tiny' });
    const card = screen.getByTestId('model-scratch');
    expect(card.textContent).toMatch(/≈ 4.2M parameters/); // 3.1M blocks + 1M token + 33k position embeddings
    expect(within(screen.getByTestId('model-gpt2')).getByText(/124M parameters/)).toBeTruthy();
  });

  it('shows the engine’s memory estimate per model, with LoRA for the large ones, and saves memory when needed', async () => {
    const est = (total: number) => ({ weightsBytes: 5e8, optimizerBytes: 1e8, activationsBytes: total - 6e8, totalBytes: total });
    const b = fakeBackend({
      training_memory: ({ config }) => {
        const c = config as TrainConfig;
        const qwen = 'source' in c.model && c.model.source.startsWith('Qwen');
        return Promise.resolve({
          estimate: est(qwen ? 9e9 : 2e9),
          withRecompute: est(qwen ? 4e9 : 1.5e9),
          machine: { totalBytes: 8e9, availableBytes: 6e9 },
        });
      },
    });
    setup.config = quickConfig({ lora: null, recompute_activations: false });
    setup.model = { kind: 'scratch', size: 'tiny' };
    render(ModelView);
    await flush();
    await flush();
    // Each listed model is estimated with its own default: LoRA over ~100M parameters.
    const asked = b.calls.filter((c) => c.cmd === 'training_memory').map((c) => c.args.config as TrainConfig);
    const smol = asked.find((c) => 'source' in c.model && c.model.source === 'HuggingFaceTB/SmolLM2-135M-Instruct');
    expect(smol?.lora?.rank).toBe(8);
    expect(asked.find((c) => 'source' in c.model && c.model.source === 'distilgpt2')?.lora).toBeNull();
    expect(screen.getByTestId('model-gpt2').textContent).toContain('needs ≈ 2.0 GB of memory to train with LoRA · fits this computer (6.0 GB free)');
    // Choosing Qwen turns LoRA on, and "Save memory" too, because only then does it fit.
    const qwen = screen.getByTestId('model-Qwen/Qwen2.5-0.5B-Instruct');
    await fireEvent.click(within(qwen).getByRole('radio'));
    await flush();
    await flush();
    expect(setup.config?.lora?.rank).toBe(8);
    expect(setup.config?.recompute_activations).toBe(true);
    // Turned off by hand, it stays off for this model (the page turns it on once).
    setup.config!.recompute_activations = false;
    await flush();
    await flush();
    expect(setup.config?.recompute_activations).toBe(false);
    // A small downloaded model trains without LoRA, whatever was chosen before.
    setup.config!.recompute_activations = true;
    await fireEvent.click(within(screen.getByTestId('model-distilgpt2')).getByRole('radio'));
    await flush();
    expect(setup.config?.lora).toBeNull();
    expect(setup.config?.recompute_activations).toBe(false); // it went with Qwen
    // Back to a new model: LoRA off (it learns all its weights).
    await fireEvent.click(within(screen.getByTestId('model-scratch')).getAllByRole('radio')[0]);
    await flush();
    expect(setup.config?.lora).toBeNull();
    setup.config = null;
    setup.savedMemoryFor = null;
  });

  it('downloads a hub model with a progress bar', async () => {
    let channel: unknown;
    const result = deferred<string>();
    const b = fakeBackend({ download_model: ({ onEvent }) => ((channel = onEvent), result.promise) });
    render(ModelView);
    const card = screen.getByTestId('model-distilgpt2');
    await fireEvent.click(within(card).getByText('Download now'));
    expect(b.last('download_model')?.id).toBe('distilgpt2');
    send(channel, [{ type: 'progress', stage: 'model.safetensors', done: 176_000_000, total: 352_000_000, unit: 'bytes' }]);
    await flush();
    expect(within(card).getByRole('progressbar').getAttribute('aria-valuenow')).toBe('50');
    result.resolve('/cache/distilgpt2');
    await flush();
    expect(card.textContent).toContain('Downloaded');
    // Remembered for the next launch.
    expect(JSON.parse(localStorage.getItem('tunesmith.downloadedModels')!)).toEqual({ distilgpt2: '/cache/distilgpt2' });
  });

  it('a download can be stopped, and then offers to download again', async () => {
    const result = deferred<string>();
    const b = fakeBackend({
      download_model: () => result.promise,
      stop_job: () => {
        result.reject(reject('cancelled', 'Stopped.'));
        return Promise.resolve(null);
      },
    });
    downloads.byId = {};
    render(ModelView);
    const card = screen.getByTestId('model-gpt2');
    await fireEvent.click(within(card).getByText('Download now'));
    const jobId = b.last('download_model')?.jobId;
    await fireEvent.click(within(card).getByRole('button', { name: 'Stop downloading GPT-2' }));
    expect(b.last('stop_job')?.jobId).toBe(jobId);
    await flush();
    expect(within(card).queryByRole('progressbar')).toBeNull();
    expect(within(card).getByText('Download now')).toBeTruthy();
    expect(within(card).queryByTestId('error-message')).toBeNull();
  });

  it('lists the models downloaded in an earlier session', () => {
    localStorage.setItem('tunesmith.downloadedModels', JSON.stringify({ gpt2: '/cache/gpt2' }));
    downloads.byId = {}; // nothing downloaded in this session
    fakeBackend({});
    render(ModelView);
    expect(screen.getByTestId('downloaded-list').textContent).toMatch(/Downloaded on this computer:\s*GPT-2\./);
    expect(within(screen.getByTestId('model-gpt2')).getByTestId('downloaded')).toBeTruthy();
    expect(within(screen.getByTestId('model-distilgpt2')).queryByTestId('downloaded')).toBeNull();
  });

  it('an offline download says so and offers the no-download path', async () => {
    fakeBackend({
      download_model: () =>
        Promise.reject(reject('hub', 'Could not download `gpt2`: the model hub at https://huggingface.co cannot be reached (connection refused). Check your internet connection.')),
    });
    render(ModelView);
    const card = screen.getByTestId('model-gpt2');
    await fireEvent.click(within(card).getByText('Download now'));
    const err = await within(card).findByTestId('error-message');
    expect(err.textContent).toContain('cannot be reached');
    expect(err.textContent).toContain('train a new model from scratch');
  });

  it('each choice is named by its title and described by its explanation', () => {
    fakeBackend({});
    render(ModelView);
    const tiny = screen.getByRole('radio', { name: 'Tiny' });
    const ids = tiny.getAttribute('aria-describedby')!.split(' ');
    expect(ids.map((id) => document.getElementById(id)?.textContent).join(' ')).toMatch(/Trains in minutes on a laptop\. ≈ 4.2M parameters/);
    const gpt2 = screen.getByRole('radio', { name: 'GPT-2' });
    expect(document.getElementById(gpt2.getAttribute('aria-describedby')!.split(' ')[0])?.textContent).toMatch(/Already knows English/);
  });

  it('choosing a card changes the model to train', async () => {
    fakeBackend({});
    render(ModelView);
    await fireEvent.click(within(screen.getByTestId('model-gpt2-medium')).getByRole('radio'));
    expect(setup.model).toEqual({ kind: 'hub', id: 'gpt2-medium' });
  });
  it('opens a .gguf model file, and lists the small chat models', async () => {
    const b = fakeBackend({ list_runs: () => [], 'plugin:dialog|open': () => '/models/smollm2-q4_k_m.gguf' });
    render(ModelView);
    expect(screen.getByTestId('model-HuggingFaceTB/SmolLM2-135M-Instruct').textContent).toMatch(/chat model.*Apache 2\.0/s);
    expect(screen.getByTestId('model-Qwen/Qwen2.5-0.5B-Instruct')).toBeTruthy();
    await fireEvent.click(screen.getByTestId('model-file'));
    await flush();
    expect(b.last('plugin:dialog|open')).toMatchObject({ options: { directory: false, filters: [{ extensions: ['gguf'] }] } });
    expect(setup.model).toEqual({ kind: 'folder', path: '/models/smollm2-q4_k_m.gguf' });
  });
});
