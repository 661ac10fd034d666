import { fireEvent, render, screen, within } from '@testing-library/svelte';
import { beforeEach, describe, expect, it } from 'vitest';
import { fakeBackend, flush } from '../test/backend';
import { runSummary } from '../test/fixtures';
import type { ScoreReport, TargetReport } from '../ipc/types';
import { bestOf, evaluation } from '../stores/evaluation.svelte';
import { runs } from '../stores/runsList.svelte';
import EvaluateView from './EvaluateView.svelte';

const report = (bleu: number, rougeL: number, copied: number, output: string): ScoreReport =>
  ({
    bleu,
    bleu_signature: 'nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0',
    rouge1: rougeL,
    rouge2: rougeL / 2,
    rougeL,
    rouge_stemmer: false,
    chrf: bleu * 1.5,
    chrf_signature: null,
    exact: 0,
    loss: 2,
    perplexity: 7.4,
    copied,
    copied_min_tokens: 12,
    examples: [
      {
        prompt: 'What is the refund window?',
        reference: '30 days.',
        output,
        bleu,
        chrf: null,
        rouge1: null,
        rouge2: null,
        rougeL,
        exact: false,
        copied,
        copied_segments: copied > 0 ? [{ text: output.slice(0, 8), copied: false }, { text: output.slice(8), copied: true }] : [{ text: output, copied: false }],
      },
    ],
    notes: [],
  }) as unknown as ScoreReport;

beforeEach(() => {
  runs.list = [runSummary({ model: 'gpt2', checkpoints: [100, 200, 300], bestStep: 200 })];
  evaluation.results = null;
  evaluation.error = null;
});

describe('EvaluateView', () => {
  it('compares the base with the best checkpoint by default, marks the better, shows answers as text', async () => {
    const results: TargetReport[] = [
      { target: { kind: 'base' }, label: 'base model (gpt2)', report: report(3, 0.1, 0, 'I do not know <img src=x onerror=alert(1)>') },
      { target: { kind: 'checkpoint', step: 200 }, label: 'step 200 (best)', report: report(41, 0.6, 0.25, 'Refunds are accepted for 30 days.') },
    ];
    const b = fakeBackend({ evaluate_run: () => results });
    render(EvaluateView);
    await flush();
    const boxes = screen.getAllByTestId('eval-target') as HTMLInputElement[];
    expect(boxes.map((x) => x.checked)).toEqual([true, false, true, false]);
    await fireEvent.click(screen.getByTestId('eval-start'));
    await flush();
    expect(b.last('evaluate_run')).toMatchObject({ runPath: runSummary().path, pairs: null, targets: [{ kind: 'base' }, { kind: 'checkpoint', step: 200 }] });
    const table = screen.getByTestId('eval-scores');
    // BLEU, chrF, ROUGE-L better for step 200; copied text better (lower) for the base.
    const best = within(table).getAllByTestId('eval-best').map((td) => td.textContent);
    expect(best).toEqual(['41.00', '61.50', '60.00', '0.0 %']);
    const example = screen.getByTestId('eval-example');
    expect(example.textContent).toContain('<img src=x onerror=alert(1)>');
    expect(example.querySelector('img')).toBeNull();
    expect(example.textContent).toContain('step 200 (best) — better');
    expect(example.textContent).toContain('25 % copied');
    expect([...screen.getByTestId('eval-copied-answer').querySelectorAll('mark')].map((m) => m.textContent)).toEqual(['are accepted for 30 days.']);
  });

  it('charts the scores across checkpoints', async () => {
    fakeBackend({
      evaluate_run: () => [100, 200, 300].map((step, i) => ({ target: { kind: 'checkpoint', step }, label: `step ${step}`, report: report(10 + i * 10, 0.2 + i * 0.1, 0, 'x') })),
    });
    render(EvaluateView);
    await flush();
    await fireEvent.click(screen.getByTestId('eval-start'));
    await flush();
    expect(screen.getByTestId('eval-chart').querySelectorAll('polyline').length).toBe(2);
  });

  it('marks nobody on a tie', () => {
    expect(bestOf([1, 1], true)).toBeNull();
    expect(bestOf([1, 2, null], false)).toBe(0);
  });
});
