// The transcript follows streamed text only while the reader is at the bottom.
import { describe, expect, it } from 'vitest';
import { atBottom, followScroll } from './followScroll';

/** jsdom does no layout: give the element a viewport height and a content height that grows with its lines. */
function scroller(lines: number) {
  const el = document.createElement('div');
  document.body.append(el);
  const LINE = 20;
  Object.defineProperty(el, 'clientHeight', { get: () => 100 });
  Object.defineProperty(el, 'scrollHeight', { get: () => Math.max(100, el.childNodes.length * LINE) });
  // Like a browser: scrollTop is clamped to the scrollable range and setting it fires 'scroll'.
  let top = 0;
  Object.defineProperty(el, 'scrollTop', {
    get: () => top,
    set: (v: number) => {
      top = Math.max(0, Math.min(v, el.scrollHeight - el.clientHeight));
      el.dispatchEvent(new Event('scroll'));
    },
  });
  const add = (n = 1) => {
    for (let i = 0; i < n; i++) el.append(document.createElement('p'));
  };
  add(lines);
  return { el, add };
}

const mutations = () => new Promise((r) => setTimeout(r, 0));

describe('followScroll', () => {
  it('atBottom allows a little slack', () => {
    const { el } = scroller(20); // 400 px of content in 100 px
    el.scrollTop = 300;
    expect(atBottom(el)).toBe(true);
    el.scrollTop = 290;
    expect(atBottom(el)).toBe(true);
    el.scrollTop = 200;
    expect(atBottom(el)).toBe(false);
  });

  it('starts at the bottom and follows new text', async () => {
    const { el, add } = scroller(20);
    const action = followScroll(el, 'a:1');
    expect(el.scrollTop).toBe(300);
    add(5);
    await mutations();
    expect(el.scrollTop).toBe(400);
    action.destroy();
  });

  it('stops following when the reader scrolls up, and resumes at the bottom', async () => {
    const { el, add } = scroller(20);
    const action = followScroll(el, 'a:1');
    el.scrollTop = 100; // the reader scrolls up to reread something
    add(5);
    await mutations();
    expect(el.scrollTop).toBe(100);
    el.scrollTop = el.scrollHeight; // back down
    add(5);
    await mutations();
    expect(el.scrollTop).toBe(el.scrollHeight - el.clientHeight);
    action.destroy();
  });

  it('a new message or conversation follows again', async () => {
    const { el, add } = scroller(20);
    const action = followScroll(el, 'a:1');
    el.scrollTop = 0;
    add(2);
    action.update('a:2'); // the reader sent a message
    expect(el.scrollTop).toBe(el.scrollHeight - el.clientHeight);
    el.scrollTop = 0;
    action.update('a:2'); // same key: a re-render, not an action of the reader
    expect(el.scrollTop).toBe(0);
    action.destroy();
  });

  it('stops observing when destroyed', async () => {
    const { el, add } = scroller(20);
    followScroll(el, 'a:1').destroy();
    const before = el.scrollTop;
    add(5);
    await mutations();
    expect(el.scrollTop).toBe(before);
  });
});
