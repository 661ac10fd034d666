//! The visible text of an HTML or XHTML document (web pages, EPUB chapters): what a reader sees,
//! laid out as paragraphs. Scripts, styles, hidden elements and page chrome (navigation, banners,
//! footers, forms) are dropped; a page that marks its content with `<main>` or `<article>` is read
//! from there only. Block elements become paragraphs separated by one blank line, list items
//! become "- " lines of one paragraph, table rows become lines of cells joined by " | ", and
//! `<pre>` keeps its spacing while all other whitespace collapses to single spaces.

use scraper::node::Element;
use scraper::{ElementRef, Html, Node};

use super::html_depth::{flatten_deep, MAX_DEPTH};

/// Elements whose content a reader never sees as running text. `header` is chrome too, but only
/// outside `article`, `main` and `section` (see `layout`).
const INVISIBLE: &str = "head script style noscript template svg canvas iframe object embed \
    textarea nav footer aside form button select";

/// ARIA roles that mark page chrome rather than content.
const CHROME_ROLES: &str = "navigation banner contentinfo";

/// Elements that start and end a paragraph (lists, tables and `<pre>` are handled apart).
const BLOCKS: &str = "address article aside blockquote body center dd details dialog div dl dt \
    fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr html legend main \
    nav p section search summary";

/// Whether `word` is one of the space-separated `words`, ignoring ASCII case.
fn listed(words: &str, word: &str) -> bool {
    words
        .split_ascii_whitespace()
        .any(|w| w.eq_ignore_ascii_case(word))
}

/// The text a reader sees in `html`; "" for an empty or all-chrome document.
pub fn visible_text(html: &str) -> String {
    let html = flatten_deep(html, MAX_DEPTH);
    let doc = Html::parse_document(&html);
    let body = find_body(&doc);
    let content = content_roots(&doc, body);
    let text = layout(&content);
    // A page whose <main> is an empty shell (filled by scripts) still has its body text.
    if text.is_empty() && content.as_slice() != [body] {
        layout(&[body])
    } else {
        text
    }
}

fn find_body(doc: &Html) -> ElementRef<'_> {
    let root = doc.root_element();
    root.descendent_elements()
        .find(|e| e.value().name() == "body")
        .unwrap_or(root)
}

/// The first visible `<main>`, else every outermost visible `<article>`, else the body.
fn content_roots<'a>(doc: &'a Html, body: ElementRef<'a>) -> Vec<ElementRef<'a>> {
    let shown = || {
        doc.root_element()
            .descendent_elements()
            .filter(|e| !hidden(e.value()))
    };
    if let Some(main) = shown().find(|e| e.value().name() == "main") {
        return vec![main];
    }
    let articles: Vec<_> = shown()
        .filter(|e| {
            e.value().name() == "article"
                && !e.ancestors().any(|a| {
                    a.value()
                        .as_element()
                        .is_some_and(|p| p.name() == "article")
                })
        })
        .collect();
    if articles.is_empty() {
        vec![body]
    } else {
        articles
    }
}

/// Whether the element's attributes hide it or mark it as page chrome.
fn hidden(e: &Element) -> bool {
    e.attr("hidden").is_some()
        || e.attr("aria-hidden")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || e.attr("role")
            .is_some_and(|r| r.split_ascii_whitespace().any(|t| listed(CHROME_ROLES, t)))
        || e.attr("style").is_some_and(|s| {
            let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
            let s = s.to_ascii_lowercase();
            s.contains("display:none") || s.contains("visibility:hidden")
        })
}

/// Lays out `roots` one after another and returns the paragraphs joined by blank lines.
fn layout(roots: &[ElementRef<'_>]) -> String {
    enum Step<'a, N> {
        Open(N),
        Close(&'a str),
    }
    let mut out = Layout::default();
    for root in roots {
        // An explicit stack rather than recursion: hostile pages nest elements thousands deep.
        let mut stack = vec![Step::Open(**root)];
        while let Some(step) = stack.pop() {
            let node = match step {
                Step::Close(name) => {
                    out.close(name);
                    continue;
                }
                Step::Open(node) => node,
            };
            match node.value() {
                Node::Text(text) => out.text(text),
                Node::Element(e) => {
                    let name = e.name();
                    // A <header> inside an article or section is its title, not the site banner.
                    let banner = name == "header"
                        && !node.ancestors().any(|a| {
                            a.value()
                                .as_element()
                                .is_some_and(|p| matches!(p.name(), "article" | "main" | "section"))
                        });
                    if banner || hidden(e) || listed(INVISIBLE, name) {
                        continue;
                    }
                    out.open(name);
                    stack.push(Step::Close(name));
                    stack.extend(node.children().rev().map(Step::Open));
                }
                _ => {}
            }
        }
    }
    out.end_paragraph();
    out.paragraphs.join("\n\n")
}

/// Paragraphs being built from a stream of text and element boundaries.
#[derive(Default)]
struct Layout {
    paragraphs: Vec<String>,
    /// The paragraph being built; its lines are separated by '\n'.
    current: String,
    /// The current line holds text (a bare "- " list marker does not count).
    line_started: bool,
    /// Whitespace was seen since the last character: one space goes before the next one.
    space: bool,
    /// How many `<pre>`, lists and tables enclose the text.
    pre: usize,
    lists: usize,
    tables: usize,
    /// Cells opened so far in the current table row.
    cells: usize,
}

impl Layout {
    fn text(&mut self, s: &str) {
        if self.pre > 0 {
            self.current.push_str(s);
            if !s.is_empty() {
                self.line_started = !s.ends_with('\n');
            }
            return;
        }
        for c in s.chars() {
            if c.is_whitespace() {
                self.space = true;
                continue;
            }
            if self.space && self.line_started && !self.current.ends_with(' ') {
                self.current.push(' ');
            }
            self.space = false;
            self.line_started = true;
            self.current.push(c);
        }
    }

    fn open(&mut self, name: &str) {
        match name {
            // Inside a table cell a line break would split the row's line: a space instead.
            "br" | "li" if self.tables > 0 && self.pre == 0 => self.space = true,
            "br" => {
                self.line_started = true;
                self.new_line();
            }
            "li" if self.pre == 0 => self.item(),
            "ul" | "ol" | "menu" | "dir" => {
                self.block();
                self.lists += 1;
            }
            "table" => {
                self.block();
                self.tables += 1;
                self.cells = 0;
            }
            "tr" | "caption" => {
                self.new_line();
                self.cells = 0;
            }
            "td" | "th" => {
                if self.cells > 0 {
                    self.current.push_str(" | ");
                    self.line_started = true;
                }
                self.cells += 1;
                self.space = false;
            }
            "pre" | "listing" | "xmp" | "plaintext" => {
                self.block();
                self.pre += 1;
            }
            _ if listed(BLOCKS, name) => self.block(),
            _ => {}
        }
    }

    fn close(&mut self, name: &str) {
        match name {
            "ul" | "ol" | "menu" | "dir" => self.lists = self.lists.saturating_sub(1),
            "table" => self.tables = self.tables.saturating_sub(1),
            "pre" | "listing" | "xmp" | "plaintext" => self.pre = self.pre.saturating_sub(1),
            "li" => {}
            _ if listed(BLOCKS, name) => {}
            _ => return,
        }
        self.block();
    }

    /// A block starts or ends: a new paragraph, or less where a paragraph cannot break (a new
    /// line inside a list, a space inside a table cell, nothing inside `<pre>`).
    fn block(&mut self) {
        if self.pre > 0 {
            return;
        }
        if self.tables > 0 {
            self.space = true;
        } else if self.lists > 0 {
            self.new_line();
        } else {
            self.end_paragraph();
        }
    }

    fn new_line(&mut self) {
        if self.line_started {
            self.current.push('\n');
        }
        self.line_started = false;
        self.space = false;
    }

    fn item(&mut self) {
        // The previous item was empty: its marker serves this one.
        if !self.line_started && self.current.ends_with("- ") {
            return;
        }
        self.new_line();
        self.current.push_str("- ");
    }

    fn end_paragraph(&mut self) {
        if !self.line_started && self.current.ends_with("- ") {
            self.current.truncate(self.current.len() - 2);
        }
        let text = tidy(&self.current);
        if !text.is_empty() {
            self.paragraphs.push(text);
        }
        self.current.clear();
        self.line_started = false;
        self.space = false;
    }
}

/// `text` without trailing whitespace on its lines (leading whitespace only survives from
/// `<pre>`), runs of blank lines collapsed to one and blank lines at either end removed.
fn tidy(text: &str) -> String {
    let mut out = String::new();
    let mut blank = false;
    for line in text.split('\n').map(str::trim_end) {
        if line.is_empty() {
            blank = true;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank { "\n\n" } else { "\n" });
        }
        out.push_str(line);
        blank = false;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::visible_text as text;

    #[test]
    fn scripts_styles_and_chrome_are_dropped() {
        let page = "<html><head><title>T</title><style>p{color:red}</style></head><body>\
            <header><h1>Site</h1></header><nav><a href='/'>Home</a></nav>\
            <script>var x = 1;</script><p>Hello <b>world</b>.</p><div role='navigation'>Menu</div>\
            <p hidden>gone</p><div aria-hidden='true'>gone</div><p style='display: none'>gone</p>\
            <form><button>Send</button></form><footer>&copy; 2024</footer></body></html>";
        assert_eq!(text(page), "Hello world.");
    }

    #[test]
    fn main_or_article_only() {
        let page =
            "<body><div>Menu</div><main><h1>Title</h1><p>Body text.</p></main><p>Ads</p></body>";
        assert_eq!(text(page), "Title\n\nBody text.");
        let blog = "<body><header>Site</header><article><header><h1>Post</h1></header>\
            <p>Text</p><footer>Share</footer></article><p>Sidebar</p></body>";
        assert_eq!(text(blog), "Post\n\nText");
        assert_eq!(text("<main></main><p>Only here</p>"), "Only here");
    }

    #[test]
    fn lists_are_one_paragraph_of_items() {
        let page = "<p>Intro</p>\n<ul>\n  <li>one</li>\n  <li>two <em>2</em></li>\n</ul>\n\
            <ol><li><p>first</p></li><li>a<ul><li>nested</li></ul></li><li></li></ol><p>End</p>";
        assert_eq!(
            text(page),
            "Intro\n\n- one\n- two 2\n\n- first\n- a\n- nested\n\nEnd"
        );
    }

    #[test]
    fn tables_are_rows_of_cells() {
        let page = "<table>\n<tr><th>Name</th> <th>Age</th></tr>\n\
            <tr><td> Ann </td>\n<td><p>31</p></td></tr></table><p>After</p>";
        assert_eq!(text(page), "Name | Age\nAnn | 31\n\nAfter");
    }

    #[test]
    fn pre_keeps_spacing_and_br_breaks_lines() {
        let page = "<p>Code:</p><pre>\nfn main() {\n    let  x = 1;\n}\n</pre>\
            <p>line one<br>line two<br/>  line three</p>";
        assert_eq!(
            text(page),
            "Code:\n\nfn main() {\n    let  x = 1;\n}\n\nline one\nline two\nline three"
        );
    }

    #[test]
    fn entities_inline_elements_and_whitespace() {
        assert_eq!(
            text("<p>caf&eacute; &amp; cr&egrave;me &lt;tag&gt; &#8364;5 &nbsp;x</p>"),
            "café & crème <tag> €5 x"
        );
        assert_eq!(
            text("<p>a<span>b<em>c<strong>d</strong></em></span>e <a href='#'>link</a>.</p>"),
            "abcde link."
        );
        assert_eq!(
            text("<p>\n   Lots   of\n\tspace\n</p>\n\n<div>  next  </div>"),
            "Lots of space\n\nnext"
        );
    }

    #[test]
    fn xhtml_chapter() {
        let page = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<!DOCTYPE html>\n\
            <html xmlns=\"http://www.w3.org/1999/xhtml\"><head><title>Ch 1</title></head>\
            <body><h1>Chapter 1</h1><p>It was a dark night.</p><p/></body></html>";
        assert_eq!(text(page), "Chapter 1\n\nIt was a dark night.");
    }

    #[test]
    fn empty_and_deep_documents() {
        assert_eq!(text(""), "");
        assert_eq!(text("<html><body> \n </body></html>"), "");
        assert_eq!(text(&format!("{}deep", "<div>".repeat(5_000))), "deep");
        // Nesting costs the parser depth² steps: this took minutes before depth was bounded.
        let deep = format!("<p>x{}deep", "<div>".repeat(200_000));
        assert_eq!(text(&deep), "x\n\ndeep");
    }
}
