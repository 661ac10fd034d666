//! Turning tokens into text pieces as they arrive. A byte-level BPE token can end in the middle of
//! a multi-byte character; such a piece is held back until the character is complete, and text that
//! could be the start of a stop string is held back until it is known not to be one.

use tokenizers::Tokenizer;

use crate::data::tokenizer;
use crate::Result;

/// Incremental detokeniser with stop strings.
pub struct TextStream<'a> {
    tok: &'a Tokenizer,
    ids: Vec<u32>,
    /// Complete text decoded so far.
    text: String,
    /// How much of `text` has been handed out.
    emitted: usize,
    stops: Vec<String>,
    stopped: bool,
}

impl<'a> TextStream<'a> {
    pub fn new(tok: &'a Tokenizer, stops: &[String]) -> Self {
        TextStream {
            tok,
            ids: Vec::new(),
            text: String::new(),
            emitted: 0,
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            stopped: false,
        }
    }

    /// Adds a token; returns the text that is now safe to show (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let decoded = tokenizer::decode(self.tok, &self.ids)?;
        // An incomplete UTF-8 sequence decodes to U+FFFD at the end: wait for the next token.
        if decoded.ends_with(char::REPLACEMENT_CHARACTER) {
            return Ok(String::new());
        }
        self.text = decoded;
        Ok(self.release(false))
    }

    /// True once a stop string has appeared.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The text so far, cut before the first stop string.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Releases whatever is still held back (end of generation).
    pub fn finish(&mut self) -> String {
        if !self.stopped {
            if let Ok(t) = tokenizer::decode(self.tok, &self.ids) {
                self.text = t;
            }
        }
        self.release(true)
    }

    fn release(&mut self, all: bool) -> String {
        if self.stopped {
            return String::new();
        }
        if let Some(cut) = self
            .stops
            .iter()
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
        {
            self.text.truncate(cut);
            self.stopped = true;
            return self.take(cut);
        }
        let mut end = self.text.len();
        if !all {
            // Hold back the longest tail that is a proper prefix of a stop string.
            for s in &self.stops {
                for k in (1..s.len()).rev() {
                    if s.is_char_boundary(k) && self.text.ends_with(&s[..k]) {
                        end = end.min(self.text.len() - k);
                        break;
                    }
                }
            }
        }
        self.take(end)
    }

    fn take(&mut self, end: usize) -> String {
        let end = end.max(self.emitted);
        let piece = self.text[self.emitted..end].to_string();
        self.emitted = end;
        piece
    }
}
