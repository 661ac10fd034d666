// Hostile model replies, and exactly what of them reaches the page: allowed structure, no
// attributes, nothing that navigates, submits, loads or runs, and the words still readable.
import { render } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import Markdown from './Markdown.svelte';
import { ALLOWED_TAGS, renderMarkdown, sanitize } from './markdown';

/** The reply as the browser parses it, in a detached element. */
function dom(text: string): HTMLElement {
  const el = document.createElement('div');
  el.innerHTML = renderMarkdown(text);
  return el;
}

/** Fails with the offending element when anything outside the allow-list, or any attribute, got through. */
function expectInert(root: Element) {
  for (const el of root.querySelectorAll('*')) {
    expect(ALLOWED_TAGS, el.outerHTML).toContain(el.tagName.toLowerCase());
    expect(el.getAttributeNames(), el.outerHTML).toEqual([]);
  }
  expect(root.querySelector('a, form, input, button, img, iframe, svg, math, script, style, object, embed, video, audio, source, link, meta, base, textarea, select')).toBeNull();
}

const text = (t: string) => dom(t).textContent?.replace(/\s+/g, ' ').trim();

describe('renderMarkdown on hostile replies', () => {
  it('shows links as their label and address, never as a link', () => {
    const cases: [string, string][] = [
      ['[click here](https://evil.example/x?a=1&b=2 "title")', 'click here (https://evil.example/x?a=1&b=2)'],
      ['[run me](javascript:alert(1))', 'run me (javascript:alert(1))'],
      ['[open](data:text/html;base64,PHNjcmlwdD4=)', 'open (data:text/html;base64,PHNjcmlwdD4=)'],
      ['[settings](../../etc/passwd)', 'settings (../../etc/passwd)'],
      ['[home](/)', 'home (/)'],
      ['[**bold** label](https://a.example)', 'bold label (https://a.example)'],
      ['<https://auto.example/path>', 'https://auto.example/path'],
      ['see https://bare.example/p or www.bare.example', 'see https://bare.example/p or www.bare.example'],
      ['write to someone@example.com', 'write to someone@example.com'],
      ['[docs][1] and [faq][]\n\n[1]: https://ref.example "T"\n[faq]: https://faq.example', 'docs (https://ref.example) and faq (https://faq.example)'],
    ];
    for (const [reply, shown] of cases) {
      const el = dom(reply);
      expectInert(el);
      expect(el.querySelector('a'), reply).toBeNull();
      expect(text(reply), reply).toBe(shown);
    }
    // Emphasis inside a label survives as structure, the address as text.
    expect(dom('[**bold** label](https://a.example)').querySelector('strong')?.textContent).toBe('bold');
  });

  it('never loads an image: its description stands in for it', () => {
    for (const [reply, shown] of [
      ['![a cat](https://img.example/cat.png)', 'a cat'],
      ['![](https://img.example/track.gif)', '[image]'],
      ['![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)', 'x'],
      ['![pic][p]\n\n[p]: https://img.example/p.png', 'pic'],
      ['[![badge](https://img.example/b.svg)](https://evil.example)', 'badge (https://evil.example)'],
    ]) {
      const el = dom(reply);
      expectInert(el);
      expect(text(reply), reply).toBe(shown);
    }
  });

  it('shows raw HTML as the text the model typed, never as markup', () => {
    const cases = [
      '<form action="https://evil.example"><input name="password"><button type="submit">Log in</button></form>',
      '<a href="https://evil.example">raw link</a>',
      '<img src=x onerror="alert(1)">',
      '<script>alert(1)</script>',
      '<iframe src="https://evil.example"></iframe>',
      '<svg onload="alert(1)"><a href="javascript:alert(1)">s</a></svg>',
      '<math><mtext><a href="javascript:alert(1)">m</a></mtext></math>',
      '<div class="modal danger" id="app" style="position:fixed;inset:0">Session expired</div>',
      'inline <span onclick="alert(1)" onmouseover="alert(2)" class="x">bait</span> here',
      '<details open><summary>more</summary>hidden</details>',
      '<style>body{display:none}</style>',
      '<input type="checkbox" checked> <button id="confirm-yes">Delete</button>',
    ];
    for (const reply of cases) {
      const el = dom(reply);
      expectInert(el);
      // Every character the model wrote is still on screen.
      expect(el.textContent?.replace(/\s+/g, ' ').trim(), reply).toBe(reply.replace(/\s+/g, ' ').trim());
    }
  });

  it('keeps Markdown structure, with every attribute removed', () => {
    const reply = [
      '# Title',
      '',
      'Some *em* and **strong** and ~~gone~~ and `code`.',
      '',
      '```js',
      'const a = "<b>";',
      '```',
      '',
      '| left | right |',
      '|:-----|------:|',
      '| 1    | 2     |',
      '',
      '1. one',
      '2. two',
      '',
      '- [ ] todo',
      '- [x] done',
      '',
      '> quoted',
      '',
      '---',
      'line one',
      'line two',
    ].join('\n');
    const el = dom(reply);
    expectInert(el);
    expect(el.querySelector('h1')?.textContent).toBe('Title');
    expect(el.querySelector('em')?.textContent).toBe('em');
    expect(el.querySelector('del')?.textContent).toBe('gone');
    expect(el.querySelector('pre code')?.textContent).toBe('const a = "<b>";\n');
    expect([...el.querySelectorAll('th, td')].map((c) => c.textContent)).toEqual(['left', 'right', '1', '2']);
    expect([...el.querySelectorAll('ol li')].map((c) => c.textContent)).toEqual(['one', 'two']);
    expect([...el.querySelectorAll('ul li')].map((c) => c.textContent)).toEqual(['[ ] todo', '[x] done']);
    expect(el.querySelector('blockquote')?.textContent?.trim()).toBe('quoted');
    expect(el.querySelector('hr')).not.toBeNull();
    expect(el.querySelector(':scope > p:last-child')?.innerHTML).toBe('line one<br>line two');
  });

  it('the sanitiser alone strips what a renderer change might let through', () => {
    const el = document.createElement('div');
    el.innerHTML = sanitize(
      '<p class="x" id="y" style="color:red" data-a="1" aria-label="z" onclick="alert(1)">' +
        '<a href="https://evil.example" target="_blank">go</a> <img src="https://img.example/i.png" alt="pic">' +
        '<code class="language-js">c</code></p>' +
        '<form action="/"><input value="v"><button>b</button></form><svg><text>s</text></svg>' +
        '<iframe src="https://evil.example"></iframe>',
    );
    expectInert(el);
    expect(el.innerHTML).toBe('<p>go <code>c</code></p>b');
  });

  it('Markdown component puts nothing but the allowed, attribute-free structure in the page', () => {
    const { container } = render(Markdown, {
      text: '## Hi [there](https://evil.example) <b onclick=x>b</b>\n\n![img](https://img.example/i.png)\n\n<form><input></form>',
    });
    const root = container.querySelector('.markdown');
    expect(root).not.toBeNull();
    expectInert(root!);
    expect(root!.querySelector('h2')?.textContent).toBe('Hi there (https://evil.example) <b onclick=x>b</b>');
    expect(root!.textContent).toContain('img');
    expect(root!.textContent).toContain('<form><input></form>');
  });
});
