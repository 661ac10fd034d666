//! Turning tokens into text pieces as they arrive. A byte-level BPE token can end in the middle of
//! a multi-byte character; such a piece is held back until the character is complete, and text that
//! could be the start of a stop string is held back until it is known not to be one.

use tokenizers::Tokenizer;

use crate::data::tokenizer;
use crate::Result;

/// Incremental detokeniser with stop strings. Each token costs the same whatever came before:
/// only the last few ids are decoded (from `prefix` on, as text-generation-inference does, so
/// that a decoder that joins tokens, such as SentencePiece's leading space, sees the one before),
/// and stop strings are looked for only in text not yet handed out.
pub struct TextStream<'a> {
    tok: &'a Tokenizer,
    ids: Vec<u32>,
    /// Ids from here on are decoded together; those before `read` were already read into `text`.
    prefix: usize,
    read: usize,
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
            prefix: 0,
            read: 0,
            text: String::new(),
            emitted: 0,
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            stopped: false,
        }
    }

    /// Adds a token; returns the text that is now safe to show (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let before = tokenizer::decode(self.tok, &self.ids[self.prefix..self.read])?;
        let now = tokenizer::decode(self.tok, &self.ids[self.prefix..])?;
        // An incomplete UTF-8 sequence decodes to U+FFFD at the end: wait for the next token.
        if now.ends_with(char::REPLACEMENT_CHARACTER) || now.len() <= before.len() {
            return Ok(String::new());
        }
        match now.get(before.len()..) {
            Some(new) if now.starts_with(&before) => self.text.push_str(new),
            // A decoder that rewrote the earlier text: decode everything once.
            _ => self.text = tokenizer::decode(self.tok, &self.ids)?,
        }
        (self.prefix, self.read) = (self.read, self.ids.len());
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
        // Text handed out never holds the start of a stop string (its tails are held back), so
        // a stop can only begin in what is still held.
        let from = self.emitted;
        if let Some(cut) = self
            .stops
            .iter()
            .filter_map(|s| self.text[from..].find(s.as_str()).map(|i| from + i))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Token by token, the pieces add up to decoding everything at once, for byte-level BPE
    /// tokenizers (GPT-2's, Llama 3's, Qwen2's) and a SentencePiece one (TinyLlama's, whose
    /// decoder drops a leading space), across multi-byte characters.
    #[test]
    fn pieces_add_up_to_the_whole_decode() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let text = "Grüße aus Zürich — 東京 ok? naïve café 🎉 done.\nNext line: 3.5 × 2";
        for file in [
            "tokenizers/llama-bpe.json",
            "tokenizers/qwen2.json",
            "tokenizers/smollm.json",
            "chat-templates/tinyllama/tokenizer.json",
        ] {
            let tok = Tokenizer::from_file(fixtures.join(file)).unwrap();
            let ids = tok.encode(text, false).unwrap().get_ids().to_vec();
            let mut stream = TextStream::new(&tok, &[]);
            let mut out = String::new();
            for &id in &ids {
                out.push_str(&stream.push(id).unwrap());
            }
            out.push_str(&stream.finish());
            assert_eq!(out, tokenizer::decode(&tok, &ids).unwrap(), "{file}");
        }
    }

    /// A stop string split across tokens ends the text before it, whatever came before.
    #[test]
    fn stops_are_found_in_the_held_text() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let tok = Tokenizer::from_file(fixtures.join("tokenizers/qwen2.json")).unwrap();
        let long = "word ".repeat(300);
        let ids = tok
            .encode(format!("{long}then END here").as_str(), false)
            .unwrap()
            .get_ids()
            .to_vec();
        let mut stream = TextStream::new(&tok, &["END".to_string()]);
        let mut out = String::new();
        for &id in &ids {
            out.push_str(&stream.push(id).unwrap());
            if stream.stopped() {
                break;
            }
        }
        out.push_str(&stream.finish());
        assert!(stream.stopped());
        assert_eq!(out, format!("{long}then "));
    }
}
