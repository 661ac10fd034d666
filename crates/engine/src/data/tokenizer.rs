//! Tokenizers: load a model's `tokenizer.json`, build GPT-2's byte-level BPE from `vocab.json` +
//! `merges.txt`, or train a byte-level BPE on the user's own text for a model made from scratch.

use std::path::Path;

use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use crate::{Error, Result};

/// GPT-2's end-of-text token, used as separator between documents and as the stop token.
pub const EOT: &str = "<|endoftext|>";

/// Loads the tokenizer stored in a model directory.
pub fn load(dir: &Path) -> Result<Tokenizer> {
    let json = dir.join("tokenizer.json");
    if json.is_file() {
        return Tokenizer::from_file(&json).map_err(|e| {
            Error::model(&json, format!("its tokenizer.json could not be read ({e})"))
        });
    }
    let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
    if vocab.is_file() && merges.is_file() {
        return from_vocab_merges(&vocab, &merges);
    }
    Err(Error::model(
        dir,
        "it has no tokenizer (tokenizer.json, or vocab.json with merges.txt); copy the tokenizer \
         files from where the model came from into this folder",
    ))
}

/// GPT-2's byte-level BPE built from its `vocab.json` and `merges.txt`.
pub fn from_vocab_merges(vocab: &Path, merges: &Path) -> Result<Tokenizer> {
    let bpe = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy())
        .build()
        .map_err(|e| {
            Error::model(
                vocab,
                format!("vocab.json/merges.txt could not be read ({e})"),
            )
        })?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_decoder(Some(ByteLevel::default()))
        .with_post_processor(Some(ByteLevel::new(false, true, true)));
    if tok.token_to_id(EOT).is_some() {
        tok.add_special_tokens(vec![AddedToken::from(EOT, true)])
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
    }
    Ok(tok)
}

/// Trains a byte-level BPE with `vocab_size` entries (including the 256 byte symbols and the
/// end-of-text token) on `texts`. Any input encodes, because every byte is in the alphabet.
pub fn train_bpe<I, S>(texts: I, vocab_size: usize) -> Result<Tokenizer>
where
    I: Iterator<Item = S> + Send,
    S: AsRef<str> + Send,
{
    if vocab_size < 257 {
        return Err(Error::config(
            "vocab_size",
            format!("is {vocab_size}; it must be at least 257 (256 bytes + the end-of-text token)"),
        ));
    }
    let trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from(EOT, true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);
    let mut tok = Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_decoder(Some(ByteLevel::default()))
        .with_post_processor(Some(ByteLevel::new(false, true, true)));
    tok.train(&mut trainer, texts)
        .map_err(|e| Error::Tokenizer(format!("training failed ({e})")))?;
    Ok(tok)
}

/// Token ids of `text` without special tokens added.
pub fn encode(tok: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    Ok(tok
        .encode_fast(text, false)
        .map_err(|e| Error::Tokenizer(format!("could not encode text ({e})")))?
        .get_ids()
        .to_vec())
}

/// Like [`encode`] for long texts: cut after blank lines into slices of about 64 KB, encoded in
/// parallel. Memory for the tokenizer's per-token bookkeeping stays per slice, not per text; a cut
/// falls only where the pre-tokenizer splits anyway, so the ids are those of a paragraph-wise
/// encoding.
pub fn encode_long(tok: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    const SLICE: usize = 64 << 10;
    if text.len() <= SLICE {
        return encode(tok, text);
    }
    let mut slices = Vec::new();
    let mut rest = text;
    while rest.len() > SLICE {
        let mut cut = SLICE;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let end = rest[..cut].rfind("\n\n").map_or(cut, |i| i + 2);
        let end = if end == 0 { cut } else { end };
        slices.push(&rest[..end]);
        rest = &rest[end..];
    }
    slices.push(rest);
    let encodings = tok
        .encode_batch_fast(slices, false)
        .map_err(|e| Error::Tokenizer(format!("could not encode text ({e})")))?;
    Ok(encodings
        .iter()
        .flat_map(|e| e.get_ids().iter().copied())
        .collect())
}

/// Text of `ids`, special tokens kept (so `<|endoftext|>` is visible and can act as a stop string).
pub fn decode(tok: &Tokenizer, ids: &[u32]) -> Result<String> {
    tok.decode(ids, false)
        .map_err(|e| Error::Tokenizer(format!("could not decode tokens ({e})")))
}

/// The bytes one token stands for: a byte-level BPE token's characters mapped back to bytes
/// (GPT-2's byte alphabet), a `<0xNN>` byte-fallback token as its byte, `▁` as a space, anything
/// else as its UTF-8. A token that is part of a multi-byte character has bytes but no text of its
/// own (OpenAI's logprobs give these bytes so clients can join such tokens).
pub fn token_bytes(tok: &Tokenizer, id: u32) -> Vec<u8> {
    let Some(piece) = tok.id_to_token(id) else {
        return Vec::new();
    };
    if let Some(b) = piece
        .strip_prefix("<0x")
        .and_then(|h| h.strip_suffix('>'))
        .and_then(|h| u8::from_str_radix(h, 16).ok())
    {
        return vec![b];
    }
    let from_alphabet: Option<Vec<u8>> = piece.chars().map(byte_of_char).collect();
    from_alphabet.unwrap_or_else(|| piece.replace('\u{2581}', " ").into_bytes())
}

/// GPT-2's `bytes_to_unicode` backwards: printable Latin-1 bytes are their own character; the
/// other 68 bytes were given the characters from U+0100 on, in order.
fn byte_of_char(c: char) -> Option<u8> {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let u = c as u32;
    if printable(u) {
        return Some(u as u8);
    }
    let n = u.checked_sub(256)?;
    (0u32..256)
        .filter(|&b| !printable(b))
        .nth(n as usize)
        .map(|b| b as u8)
}

/// End-of-text tokens of the tokenizers Tunesmith meets: GPT-2, SmolLM and Qwen; Llama 3; Llama 2,
/// TinyLlama and Mistral. The first one a tokenizer has separates documents in training data.
const END_TOKENS: [&str; 3] = [EOT, "<|end_of_text|>", "</s>"];

/// The end-of-text id, if the tokenizer has one.
pub fn eot_id(tok: &Tokenizer) -> Option<u32> {
    END_TOKENS.iter().find_map(|t| tok.token_to_id(t))
}

/// Writes `tokenizer.json` atomically into `dir`.
pub fn save(tok: &Tokenizer, dir: &Path) -> Result<()> {
    let json = tok
        .to_string(false)
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    crate::fsutil::write_atomic(&dir.join("tokenizer.json"), json.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each token's bytes, joined, are the text's bytes, also where a token is half a character.
    #[test]
    fn token_bytes_join_to_the_text() {
        let texts = [
            "naïve café 東京 ✓ ".repeat(40),
            "plain words here ".repeat(40),
        ];
        let tok = train_bpe(texts.iter(), 300).unwrap();
        let text = "東京 café ✓ words";
        let ids = encode(&tok, text).unwrap();
        let bytes: Vec<u8> = ids.iter().flat_map(|&i| token_bytes(&tok, i)).collect();
        assert_eq!(bytes, text.as_bytes());
        assert!(ids
            .iter()
            .any(|&i| std::str::from_utf8(&token_bytes(&tok, i)).is_err()));
    }

    #[test]
    fn trained_bpe_encodes_anything_and_round_trips() {
        let texts = [
            "the cat sat on the mat. ".repeat(50),
            "the dog ate the cat's food. ".repeat(50),
        ];
        let tok = train_bpe(texts.iter(), 300).unwrap();
        assert!(tok.get_vocab_size(true) <= 300);
        let eot = eot_id(&tok).unwrap();
        // Unseen characters, including multi-byte ones, still encode through the byte alphabet.
        let s = "Zebra café ☕ naïve 😀";
        let ids = encode(&tok, s).unwrap();
        assert_eq!(decode(&tok, &ids).unwrap(), s);
        assert!(!ids.contains(&eot));
        let ids = encode(&tok, &format!("the cat{EOT}the dog")).unwrap();
        assert!(ids.contains(&eot));
        // Merges were learnt: "the cat" is fewer tokens than bytes.
        assert!(encode(&tok, "the cat sat").unwrap().len() < "the cat sat".len());
        // Long texts are encoded in slices with the same result, whatever the slice edges.
        let long: String = (0..6000)
            .map(|i| format!("the cat {i} sat on the mat ☕.\n\n"))
            .collect::<String>()
            + &"x".repeat(70_000);
        let ids = encode_long(&tok, &long).unwrap();
        assert_eq!(decode(&tok, &ids).unwrap(), long);
        assert_eq!(ids.len(), encode(&tok, &long).unwrap().len());
    }

    #[test]
    fn too_small_vocab_is_a_config_error() {
        let e = train_bpe(["x"].iter(), 100).unwrap_err();
        assert!(e.to_string().contains("vocab_size"), "{e}");
    }
}
