// The confirm dialog's keyboard contract: the safe choice has focus, Tab stays inside, Escape
// cancels, and focus returns to the button that opened it.
import { fireEvent, render, screen } from '@testing-library/svelte';
import { afterEach, describe, expect, it, vi } from 'vitest';
import ConfirmDialog from './ConfirmDialog.svelte';

let opener: HTMLButtonElement | null = null;

afterEach(() => {
  opener?.remove();
  opener = null;
});

/** A page button that "opened" the dialog, focused as a click would leave it. */
function openFrom(): HTMLButtonElement {
  opener = document.createElement('button');
  opener.textContent = 'Delete';
  document.body.append(opener);
  opener.focus();
  return opener;
}

function open() {
  const onConfirm = vi.fn();
  const onCancel = vi.fn();
  const view = render(ConfirmDialog, { title: 'Delete this run?', message: 'This cannot be undone.', confirmLabel: 'Delete', danger: true, onConfirm, onCancel });
  return { ...view, onConfirm, onCancel, cancel: screen.getByTestId('confirm-cancel'), yes: screen.getByTestId('confirm-yes') };
}

describe('ConfirmDialog', () => {
  it('focuses Cancel, not the destructive button', () => {
    openFrom();
    const { cancel } = open();
    expect(document.activeElement).toBe(cancel);
  });

  it('makes the page behind it inert while it is open, and only then', () => {
    const page = openFrom();
    const view = open();
    expect(page.hasAttribute('inert')).toBe(true);
    expect(view.cancel.closest('[inert]')).toBeNull();
    view.unmount();
    expect(page.hasAttribute('inert')).toBe(false);
  });

  it('is named by its title and described by its message', () => {
    open();
    expect(screen.getByRole('alertdialog', { name: 'Delete this run?', description: 'This cannot be undone.' })).toBeTruthy();
  });

  it('Tab and Shift+Tab cycle inside the dialog', async () => {
    const page = openFrom();
    const { cancel, yes } = open();
    // From the last button Tab wraps to the first; from the first Shift+Tab wraps to the last.
    yes.focus();
    await fireEvent.keyDown(yes, { key: 'Tab' });
    expect(document.activeElement).toBe(cancel);
    await fireEvent.keyDown(cancel, { key: 'Tab', shiftKey: true });
    expect(document.activeElement).toBe(yes);
    // Focus that escaped to the page (a click on the backdrop or behind it) is brought back in.
    page.focus();
    await fireEvent.keyDown(page, { key: 'Tab' });
    expect(document.activeElement).toBe(cancel);
    page.focus();
    await fireEvent.keyDown(page, { key: 'Tab', shiftKey: true });
    expect(document.activeElement).toBe(yes);
  });

  it('a Tab between the buttons is left to the browser', async () => {
    openFrom();
    const { cancel } = open();
    const notPrevented = await fireEvent.keyDown(cancel, { key: 'Tab' });
    expect(notPrevented).toBe(true);
  });

  it('Escape cancels without confirming', async () => {
    openFrom();
    const { onCancel, onConfirm } = open();
    await fireEvent.keyDown(document.activeElement!, { key: 'Escape' });
    expect(onCancel).toHaveBeenCalledTimes(1);
    expect(onConfirm).not.toHaveBeenCalled();
  });

  it('returns focus to the opener when it closes, and stops listening', async () => {
    const page = openFrom();
    const { unmount, onCancel } = open();
    expect(document.activeElement).not.toBe(page);
    unmount();
    expect(document.activeElement).toBe(page);
    await fireEvent.keyDown(page, { key: 'Escape' });
    expect(onCancel).not.toHaveBeenCalled();
  });
});
