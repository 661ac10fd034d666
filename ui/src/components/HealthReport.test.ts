import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { deferred, fakeBackend } from '../test/backend';
import { quickConfig } from '../test/fixtures';
import type { PrepareOptions, Report } from '../ipc/types';
import { HealthCheck } from '../stores/healthCheck.svelte';
import HealthReport from './HealthReport.svelte';

function report(over: Partial<Report> = {}): Report {
  return {
    files: [],
    filesOk: 2,
    filesFailed: 0,
    documents: 2,
    examples: 0,
    chars: 48_000,
    words: 8_000,
    tokens: 12_000,
    trainTokens: 10_800,
    valTokens: 1_200,
    duplicateShare: 0.4,
    tokensPerWord: 1.5,
    dropped: [{ source: '/docs/copy.txt', reason: 'an exact duplicate of /docs/a.txt' }],
    piiHits: [],
    warnings: ['Only 12 000 tokens: the model will memorise rather than generalise; we suggest at most 63 steps, or add more text.', '40 % of the text was duplicated and has been left out.'],
    suggestions: { quick_steps: 22, balanced_steps: 63, thorough_steps: 106 },
    ...over,
  };
}

const options = (): PrepareOptions => quickConfig().prepare;

describe('HealthReport', () => {
  it('shows the warnings, duplicates and suggested lengths for the files', async () => {
    const b = fakeBackend({ data_report: () => report() });
    render(HealthReport, { paths: ['/docs/a.txt', '/docs/copy.txt'], options: options(), onScrubChange: () => {} });
    const warnings = await screen.findAllByTestId('report-warning');
    expect(warnings.map((w) => w.textContent)).toEqual(report().warnings);
    expect(b.last('data_report')).toMatchObject({ paths: ['/docs/a.txt', '/docs/copy.txt'], options: { scrub_pii: false } });
    expect(screen.getByTestId('report-summary').textContent).toContain('40 % duplicated');
    expect(screen.getByTestId('dropped').textContent).toContain('copy.txt: an exact duplicate of a.txt');
    expect(screen.getByTestId('use-steps-quick').textContent?.trim()).toBe('Quick: 22 steps');
  });

  it('each suggested length is a button that sets the training length to it', async () => {
    fakeBackend({ data_report: () => report() });
    const used: [string, number][] = [];
    render(HealthReport, {
      paths: ['/docs/a.txt'],
      options: options(),
      steps: 200,
      preset: 'quick',
      onScrubChange: () => {},
      onUseSteps: (p: string, n: number) => used.push([p, n]),
    });
    const balanced = await screen.findByRole('button', { name: 'Balanced: 63 steps' });
    expect(screen.getByRole('group', { name: 'Suggested training length' }).textContent).toContain('now 200 steps');
    expect(balanced.getAttribute('aria-pressed')).toBe('false');
    await fireEvent.click(balanced);
    expect(used).toEqual([['balanced', 63]]);
  });

  it('marks the suggestion already in use', async () => {
    fakeBackend({ data_report: () => report() });
    render(HealthReport, { paths: ['/docs/a.txt'], options: options(), steps: 22, preset: 'quick', onScrubChange: () => {} });
    expect((await screen.findByTestId('use-steps-quick')).getAttribute('aria-pressed')).toBe('true');
    expect(screen.getByTestId('use-steps-balanced').getAttribute('aria-pressed')).toBe('false');
  });

  it('lists personal data for review when scrubbing is on, and the box reports changes', async () => {
    fakeBackend({
      data_report: ({ options }) =>
        report({ piiHits: (options as PrepareOptions).scrub_pii ? [{ source: '/docs/a.txt', kind: 'EMAIL', text: 'jane@example.com' }] : [] }),
    });
    let changed: boolean | null = null;
    render(HealthReport, { paths: ['/docs/a.txt'], options: { ...options(), scrub_pii: true }, onScrubChange: (on: boolean) => (changed = on) });
    const hit = await screen.findByTestId('pii-hit');
    expect(hit.textContent).toContain('[EMAIL]');
    expect(hit.textContent).toContain('jane@example.com');
    await fireEvent.click(screen.getByTestId('scrub-pii'));
    expect(changed).toBe(false);
    // The examples describe the box; they are not part of its name.
    const box = screen.getByRole('checkbox', { name: /^Replace personal data with placeholders before training/ });
    expect(document.getElementById(box.getAttribute('aria-describedby')!)?.textContent).toContain('e-mail addresses, phone numbers');
  });

  it('shows an error in place', async () => {
    fakeBackend({ data_report: () => Promise.reject({ kind: 'data', message: 'No usable text in what was given.' }) });
    render(HealthReport, { paths: ['/docs/a.txt'], options: options(), onScrubChange: () => {} });
    await waitFor(() => expect(screen.getByTestId('error-message').textContent).toContain('No usable text'));
  });
});

describe('HealthCheck', () => {
  it('gives its report only for exactly the files it describes', async () => {
    fakeBackend({ data_report: () => report() });
    const c = new HealthCheck();
    await c.refresh(['/a', '/b'], options());
    expect(c.reportFor(['/a', '/b'])?.suggestions.quick_steps).toBe(22);
    expect(c.reportFor(['/a'])).toBeNull();
    expect(c.reportFor(['/b', '/a'])).toBeNull();
    expect(c.reportFor([])).toBeNull();
  });

  it('keeps only the newest answer when requests overtake each other', async () => {
    const slow = deferred<Report>();
    const answers = [slow.promise, Promise.resolve(report({ documents: 9 }))];
    fakeBackend({ data_report: () => answers.shift() });
    const c = new HealthCheck();
    const first = c.refresh(['/a'], options());
    await c.refresh(['/a', '/b'], options());
    slow.resolve(report({ documents: 1 }));
    await first;
    expect(c.report?.documents).toBe(9);
    expect(c.loading).toBe(false);
    await c.refresh([], options());
    expect(c.report).toBeNull();
  });
});
