// Model output is untrusted text. It is rendered as Markdown for readability, but only as inert
// structure: no links that could navigate the app's webview, no images that would fetch from the
// network, no raw HTML, and no attributes at all (class/id/style invite styling tricks and DOM
// clobbering). Two layers: the Markdown renderer never emits those things, and DOMPurify removes
// anything outside a small allow-list in case a renderer change lets one through.
import DOMPurify from 'dompurify';
import { Marked, type Tokens } from 'marked';

/** Everything Markdown needs for prose, lists, code and tables; nothing interactive or loading. */
export const ALLOWED_TAGS = [
  'p', 'br', 'hr', 'em', 'strong', 'del', 'code', 'pre', 'blockquote',
  'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'ul', 'ol', 'li',
  'table', 'thead', 'tbody', 'tr', 'th', 'td',
];

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

const md = new Marked({ async: false, gfm: true, breaks: true });
md.use({
  renderer: {
    // A link is shown as text: its label, then the address, so the reader sees where it points
    // and can copy it, but nothing in the app can be sent anywhere by a click.
    link({ href, tokens }: Tokens.Link): string {
      const label = this.parser.parseInline(tokens);
      const plain = this.parser.parseInline(tokens, this.parser.textRenderer);
      // Autolinks (<https://…>, bare www.… and e-mail addresses) already show their address.
      const same = [plain, `http://${plain}`, `mailto:${plain}`].some((l) => l === href || l === escapeHtml(href));
      if (!href || same) return label;
      return `${label} (${escapeHtml(href)})`;
    },
    // Images would load from wherever the model says; their description stands in for them.
    image({ text, tokens }: Tokens.Image): string {
      const alt = tokens ? this.parser.parseInline(tokens, this.parser.textRenderer) : escapeHtml(text);
      return alt.trim() ? alt : '[image]';
    },
    // HTML the model writes is text it wrote, shown as typed, never markup.
    html({ text, block }: Tokens.HTML | Tokens.Tag): string {
      const shown = escapeHtml(text);
      return block ? `<p>${shown.trimEnd().replace(/\n/g, '<br>')}</p>\n` : shown;
    },
    // Task-list boxes would be <input> elements; plain marks say the same.
    checkbox({ checked }: Tokens.Checkbox): string {
      return checked ? '[x] ' : '[ ] ';
    },
  },
});

export function renderMarkdown(text: string): string {
  return sanitize(md.parse(text) as string);
}

/** The second layer: whatever HTML comes in, only allowed tags without attributes come out. */
export function sanitize(html: string): string {
  return DOMPurify.sanitize(html, {
    ALLOWED_TAGS,
    ALLOWED_ATTR: [],
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
  });
}
