// Keyboard behaviour of a modal dialog, as a Svelte action: focus starts on the safe choice, Tab and
// Shift+Tab cycle inside the dialog (never into the page behind it), Escape cancels, and focus goes
// back to whatever opened the dialog when it closes. The page behind is made `inert` meanwhile, so
// neither a pointer, nor a screen reader's virtual cursor, nor find-in-page reaches it.

const FOCUSABLE = 'button, [href], input, select, textarea, [tabindex]:not([tabindex="-1"])';

export interface FocusTrapOptions {
  /** Called on Escape. */
  onEscape: () => void;
  /** Selector of the element focused first; the first focusable element otherwise. */
  initial?: string;
}

/** Elements inside `root` that Tab can reach, in order. */
export function focusables(root: HTMLElement): HTMLElement[] {
  return [...root.querySelectorAll<HTMLElement>(FOCUSABLE)].filter((el) => !el.hasAttribute('disabled') && !el.closest('[inert]'));
}

/** Makes everything outside `node` inert (each ancestor's siblings, up to the body); returns the
 * undo. Elements that were inert already are left as they were. */
export function inertOutside(node: HTMLElement): () => void {
  const made: HTMLElement[] = [];
  for (let el: HTMLElement | null = node; el && el !== document.body; el = el.parentElement) {
    for (const sibling of el.parentElement?.children ?? []) {
      // The attribute rather than the property: selectors (`[inert]`) and every engine see it.
      if (sibling !== el && sibling instanceof HTMLElement && !sibling.hasAttribute('inert')) {
        sibling.setAttribute('inert', '');
        made.push(sibling);
      }
    }
  }
  return () => made.forEach((el) => el.removeAttribute('inert'));
}

export function focusTrap(node: HTMLElement, options: FocusTrapOptions) {
  let opts = options;
  const restore = inertOutside(node);
  const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  const first = (opts.initial ? node.querySelector<HTMLElement>(opts.initial) : null) ?? focusables(node)[0] ?? node;
  first.focus();

  // On the document, not the dialog: a click on the backdrop moves focus out of the dialog, and
  // the keys must still work from there.
  function keydown(e: KeyboardEvent) {
    if (e.key === 'Escape') {
      e.preventDefault();
      opts.onEscape();
      return;
    }
    if (e.key !== 'Tab') return;
    const items = focusables(node);
    if (items.length === 0) {
      e.preventDefault();
      return;
    }
    const active = document.activeElement;
    const inside = active instanceof Node && node.contains(active);
    if (e.shiftKey && (!inside || active === items[0])) {
      e.preventDefault();
      items[items.length - 1].focus();
    } else if (!e.shiftKey && (!inside || active === items[items.length - 1])) {
      e.preventDefault();
      items[0].focus();
    }
  }
  document.addEventListener('keydown', keydown);

  return {
    update(next: FocusTrapOptions) {
      opts = next;
    },
    destroy() {
      document.removeEventListener('keydown', keydown);
      restore();
      // The opener may be gone (a deleted row's button); then focus stays where the page puts it.
      if (opener && opener.isConnected) opener.focus();
    },
  };
}
