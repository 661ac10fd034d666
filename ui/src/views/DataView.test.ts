import { fireEvent, render, screen } from '@testing-library/svelte';
import { beforeEach, describe, expect, it } from 'vitest';
import { fakeBackend, reject } from '../test/backend';
import { fileReport, quickConfig } from '../test/fixtures';
import { dataset } from '../stores/dataset.svelte';
import { setup } from '../stores/setup.svelte';
import DataView from './DataView.svelte';

const DEMO = '/app/demo/business-rules.md';

beforeEach(() => {
  dataset.files = [];
  dataset.error = null;
  dataset.selected = null;
  setup.config = quickConfig();
});

describe('DataView', () => {
  it('the first-run path adds the demo dataset and shows what the model will read', async () => {
    const b = fakeBackend({ demo_dataset: () => DEMO, inspect_files: ({ paths }) => (paths as string[]).map((path) => fileReport({ path })) });
    render(DataView);
    await fireEvent.click(screen.getByTestId('use-demo'));
    const rows = await screen.findAllByTestId('file-row');
    expect(b.last('inspect_files')).toEqual({ paths: [DEMO] });
    expect(rows).toHaveLength(1);
    expect(rows[0].textContent).toContain('business-rules.md');
    expect(rows[0].textContent).toContain('13k'); // ≈ tokens (12,750)

    await fireEvent.click(rows[0]);
    expect(screen.getByTestId('file-preview').textContent).toContain('When a customer asks for a refund');

    await fireEvent.click(screen.getByRole('button', { name: 'Remove business-rules.md' }));
    expect(screen.queryAllByTestId('file-row')).toHaveLength(0);
  });

  it('a rejected command shows its message and what to do, in place', async () => {
    fakeBackend({
      demo_dataset: () => DEMO,
      inspect_files: () => Promise.reject(reject('file', '/app/demo/business-rules.md: cannot be read (permission denied)')),
    });
    render(DataView);
    await fireEvent.click(screen.getByTestId('use-demo'));
    const error = await screen.findByTestId('error-message');
    expect(error.textContent).toContain('cannot be read (permission denied)');
    expect(error.textContent).toContain('Remove or fix the file');
    expect(screen.queryAllByTestId('file-row')).toHaveLength(0);
  });

  it('an unusable file stays listed with its plain reason and is not counted', async () => {
    fakeBackend({
      demo_dataset: () => DEMO,
      inspect_files: () => [
        fileReport(),
        fileReport({ path: '/d/r.pdf', name: 'r.pdf', extension: 'pdf', status: 'error', error: 'has extension `.pdf`; save it as plain text first', tokensEstimate: 0 }),
      ],
    });
    render(DataView);
    await fireEvent.click(screen.getByTestId('use-demo'));
    expect(await screen.findAllByTestId('file-row')).toHaveLength(2);
    expect(screen.getByTestId('file-error').textContent).toContain('save it as plain text first');
    expect(screen.getByText(/1 of 2 files usable/)).toBeTruthy();
  });

  it('file rows open and close with Enter or Space; Remove keeps its own keys', async () => {
    fakeBackend({ demo_dataset: () => DEMO, inspect_files: () => [fileReport()] });
    render(DataView);
    await fireEvent.click(screen.getByTestId('use-demo'));
    const row = await screen.findByTestId('file-row');
    expect(row.tabIndex).toBe(0);
    expect(row.getAttribute('aria-expanded')).toBe('false');
    await fireEvent.keyDown(row, { key: 'Enter' });
    expect(screen.getByTestId('file-preview').textContent).toContain('When a customer asks for a refund');
    expect(row.getAttribute('aria-expanded')).toBe('true');
    expect(row.getAttribute('aria-controls')).toBe('file-preview');
    await fireEvent.keyDown(row, { key: ' ' });
    expect(screen.queryByTestId('file-preview')).toBeNull();
    // Enter on the row's Remove button is the button's, not the row's.
    await fireEvent.keyDown(screen.getByRole('button', { name: 'Remove business-rules.md' }), { key: 'Enter' });
    expect(screen.queryByTestId('file-preview')).toBeNull();
    await fireEvent.keyDown(row, { key: 'a' });
    expect(screen.queryByTestId('file-preview')).toBeNull();
  });

  it('the held-back slider is described by its explanation', async () => {
    fakeBackend({ demo_dataset: () => DEMO, inspect_files: () => [fileReport()] });
    render(DataView);
    await fireEvent.click(screen.getByTestId('use-demo'));
    const slider = await screen.findByRole('slider', { name: 'Fraction of text held back for checking' });
    expect(document.getElementById(slider.getAttribute('aria-describedby')!)?.textContent).toMatch(/kept aside and never learned from/);
  });

  it('the held-back slider edits the training config', async () => {
    fakeBackend({ demo_dataset: () => DEMO, inspect_files: () => [fileReport()] });
    render(DataView);
    await fireEvent.click(screen.getByTestId('use-demo'));
    const slider = (await screen.findByTestId('val-frac')) as HTMLInputElement;
    await fireEvent.input(slider, { target: { value: '0.25' } });
    expect(setup.config?.val_frac).toBe(0.25);
    expect(screen.getByText('25%')).toBeTruthy();
  });
});
