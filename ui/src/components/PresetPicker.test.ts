import { fireEvent, render, screen } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import type { Preset } from '../ipc/commands';
import PresetPicker from './PresetPicker.svelte';

function picker(value: Preset | null = 'quick') {
  const picked: Preset[] = [];
  const view = render(PresetPicker, {
    value,
    lengths: { quick: { steps: 47, capped: true }, balanced: { steps: 141, capped: true }, thorough: { steps: 4000, capped: false } },
    onPick: (p: Preset) => picked.push(p),
  });
  return { picked, view };
}

describe('PresetPicker', () => {
  it('names each preset with its length on this data; the blurb is a description', () => {
    picker();
    const quick = screen.getByRole('radio', { name: 'Quick: 47 steps (your data is small)' });
    expect(screen.getByRole('radio', { name: 'Thorough: 4,000 steps' })).toBeTruthy();
    const blurb = document.getElementById(quick.getAttribute('aria-describedby')!);
    expect(blurb?.textContent).toMatch(/^A few minutes/);
  });

  it('is one Tab stop: the chosen preset, or the first when none is chosen', () => {
    const { view } = picker('balanced');
    expect(screen.getAllByRole('radio').map((r) => r.tabIndex)).toEqual([-1, 0, -1]);
    view.unmount();
    picker(null);
    expect(screen.getAllByRole('radio').map((r) => r.tabIndex)).toEqual([0, -1, -1]);
  });

  it('arrow keys, Home and End move focus and choose, wrapping round', async () => {
    const { picked } = picker('quick');
    const [quick, balanced, thorough] = screen.getAllByRole('radio');
    quick.focus();
    await fireEvent.keyDown(quick, { key: 'ArrowRight' });
    expect(document.activeElement).toBe(balanced);
    await fireEvent.keyDown(balanced, { key: 'End' });
    expect(document.activeElement).toBe(thorough);
    await fireEvent.keyDown(thorough, { key: 'ArrowDown' });
    expect(document.activeElement).toBe(quick);
    await fireEvent.keyDown(quick, { key: 'ArrowUp' });
    await fireEvent.keyDown(thorough, { key: 'Home' });
    expect(document.activeElement).toBe(quick);
    // Moving onto the preset already chosen does not reload it.
    expect(picked).toEqual(['balanced', 'thorough', 'thorough']);
  });
});
