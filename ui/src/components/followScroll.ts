// A scrolling transcript that keeps the newest text in view while it streams, as a Svelte action:
// it follows the bottom while the reader is there, stops following when they scroll up to read
// something earlier, and picks up again when they scroll back down or a new message is sent.

/** How close to the bottom (px) still counts as "at the bottom": rounding and a last partial line. */
export const BOTTOM_SLACK = 24;

export function atBottom(el: HTMLElement, slack = BOTTOM_SLACK): boolean {
  return el.scrollHeight - el.scrollTop - el.clientHeight <= slack;
}

/**
 * `key` changing (e.g. the number of messages, or the conversation shown) means the reader acted:
 * follow again from the bottom.
 */
export function followScroll(node: HTMLElement, key: unknown) {
  let following = true;
  let lastKey = key;

  const toBottom = () => {
    node.scrollTop = node.scrollHeight;
  };
  // Scrolls the code makes land at the bottom, so they read as "following" too.
  const onScroll = () => {
    following = atBottom(node);
  };
  // Any change inside (a streamed token, a new message) keeps the bottom in view if followed.
  const observer = new MutationObserver(() => {
    if (following) toBottom();
  });

  node.addEventListener('scroll', onScroll, { passive: true });
  observer.observe(node, { childList: true, subtree: true, characterData: true });
  toBottom();

  return {
    update(next: unknown) {
      if (next === lastKey) return;
      lastKey = next;
      following = true;
      toBottom();
    },
    destroy() {
      observer.disconnect();
      node.removeEventListener('scroll', onScroll);
    },
  };
}
