import { fireEvent, render, screen } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { fakeBackend, flush } from '../test/backend';
import { DEFAULT_SETTINGS } from '../stores/chat';
import { Compare } from '../stores/compare.svelte';
import ComparePanel from './ComparePanel.svelte';

describe('ComparePanel', () => {
  it('checks your model’s answer for copied text and highlights it, as text', async () => {
    const b = fakeBackend({
      check_copied: () => ({
        share: 0.5,
        minTokens: 12,
        tokens: 10,
        segments: [
          { text: '<i>New</i> words, then ', copied: false },
          { text: 'the exact sentence from your notes.', copied: true },
        ],
      }),
    });
    const compare = new Compare();
    compare.results = { tuned: '<i>New</i> words, then the exact sentence from your notes.', base: 'other' };
    render(ComparePanel, { compare, tunedModel: '/runs/notes', tunedName: 'notes', settings: DEFAULT_SETTINGS });
    await fireEvent.click(screen.getByTestId('compare-check-copied'));
    await flush();
    expect(b.last('check_copied')).toMatchObject({ runPath: '/runs/notes' });
    const shown = screen.getByTestId('compare-tuned');
    expect([...shown.querySelectorAll('mark')].map((m) => m.textContent)).toEqual(['the exact sentence from your notes.']);
    expect(shown.querySelector('i')).toBeNull();
    expect(screen.getByTestId('compare-copied-note').textContent).toContain('50 % copied');
    // A new answer is not shown with the old check.
    compare.results = { tuned: 'Something else entirely.', base: 'other' };
    await flush();
    expect(screen.getByTestId('compare-tuned').querySelector('mark')).toBeNull();
  });
});
