//! Tokenizers for the candle engine: from a `tokenizer.json`, or built from a
//! GGUF file's own vocabulary when there is none.
//!
//! A GGUF carries its BPE vocabulary and merges, and names its pre-tokenizer in
//! `tokenizer.ggml.pre`. The split that name stands for lives in llama.cpp's
//! source, not in the file, so each supported name is written out here; an
//! unknown one is an error instead of a tokenizer that silently splits text
//! differently from the model's own. Token bytes come from the byte-level
//! alphabet, so text is rebuilt exactly, multi-byte characters included.

use std::collections::{HashMap, HashSet};

use candle_core::quantized::gguf_file::Value as GgufValue;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

/// Pre-tokenizer names (`tokenizer.ggml.pre`) this build can rebuild.
pub const KNOWN_PRE: &[&str] = &["smollm"];

/// Texts of tokens that end a turn, besides the file's EOS.
const END_OF_GENERATION: &[&str] = &[
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end|>",
    "<end_of_turn>",
    "</s>",
];

/// A tokenizer with what generation needs around it.
pub(crate) struct Vocab {
    pub tokenizer: Tokenizer,
    /// The bytes each token id stands for (special tokens: their text).
    pub token_bytes: Vec<Vec<u8>>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// Tokens that end generation.
    pub end_of_generation: HashSet<u32>,
    pub add_bos: bool,
}

impl Vocab {
    /// Token ids of `text`, special tokens parsed, no BOS.
    pub(crate) fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| format!("cannot tokenize the prompt: {e}"))
    }

    /// The text of a token (special tokens as their text).
    pub(crate) fn text_of(&self, id: u32) -> Option<String> {
        self.token_bytes
            .get(id as usize)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

/// The byte-level alphabet: each byte as the printable character BPE vocabularies
/// spell it with, and back.
fn byte_alphabet() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut map = HashMap::new();
    let mut extra = 0;
    for b in 0u32..=255 {
        let c = if printable.contains(&b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        map.insert(char::from_u32(c).expect("valid code point"), b as u8);
    }
    map
}

fn byte_level_bytes(token: &str, alphabet: &HashMap<char, u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(token.len());
    for c in token.chars() {
        match alphabet.get(&c) {
            Some(b) => out.push(*b),
            None => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

/// GGUF token types (llama.cpp's `llama_token_type`).
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;

/// Build the tokenizer a GGUF file describes.
pub(crate) fn from_gguf(md: &HashMap<String, GgufValue>) -> Result<Vocab, String> {
    let text = |k: &str| md.get(k).and_then(|v| v.to_string().ok()).cloned();
    let id = |k: &str| md.get(k).and_then(|v| v.to_u32().ok());
    let model = text("tokenizer.ggml.model").unwrap_or_default();
    if model != "gpt2" {
        return Err(format!(
            "its tokenizer is `{model}` (tokenizer.ggml.model); the candle engine rebuilds only byte-level BPE (`gpt2`) tokenizers from a GGUF: put a tokenizer.json beside the file, or use the llamacpp backend"
        ));
    }
    let pre = text("tokenizer.ggml.pre").unwrap_or_else(|| "default".into());
    if !KNOWN_PRE.contains(&pre.as_str()) {
        return Err(format!(
            "its pre-tokenizer `{pre}` (tokenizer.ggml.pre) is not one the candle engine knows ({}); put a tokenizer.json beside the file, or use the llamacpp backend",
            KNOWN_PRE.join(", ")
        ));
    }
    let strings = |k: &str| -> Result<Vec<String>, String> {
        let values = md
            .get(k)
            .ok_or_else(|| format!("`{k}` is missing"))?
            .to_vec()
            .map_err(|e| format!("`{k}`: {e}"))?;
        values
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| format!("`{k}`: {e}")))
            .collect()
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges: Vec<(String, String)> = strings("tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| match m.split_once(' ') {
            Some((a, b)) => Ok((a.to_string(), b.to_string())),
            None => Err(format!("merge {m:?} has no space")),
        })
        .collect::<Result<_, _>>()?;
    let types: Vec<i32> = match md.get("tokenizer.ggml.token_type").map(|v| v.to_vec()) {
        Some(Ok(values)) => values.iter().map(|v| v.to_i32().unwrap_or(1)).collect(),
        _ => vec![1; tokens.len()],
    };
    let vocab: tokenizers::models::bpe::Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| format!("cannot build its BPE tokenizer: {e}"))?;
    // `smollm`: digits one by one, then GPT-2's byte-level split.
    let digits = Split::new(
        SplitPattern::Regex(r"\p{N}".into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| format!("pre-tokenizer: {e}"))?;
    let pre_tokenizer = Sequence::new(vec![digits.into(), ByteLevel::new(false, true, true).into()]);
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
    let special: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, t)| matches!(**t, TYPE_CONTROL | TYPE_USER_DEFINED))
        .map(|(tok, _)| AddedToken::from(tok.clone(), true))
        .collect();
    tokenizer.add_special_tokens(&special);

    let alphabet = byte_alphabet();
    let token_bytes = tokens
        .iter()
        .zip(&types)
        .map(|(tok, ty)| match *ty {
            TYPE_CONTROL | TYPE_USER_DEFINED => tok.as_bytes().to_vec(),
            _ => byte_level_bytes(tok, &alphabet),
        })
        .collect();
    let bos = id("tokenizer.ggml.bos_token_id");
    let eos = id("tokenizer.ggml.eos_token_id");
    let mut end_of_generation: HashSet<u32> = [
        eos,
        id("tokenizer.ggml.eot_token_id"),
        id("tokenizer.ggml.eom_token_id"),
    ]
    .into_iter()
    .flatten()
    .collect();
    for (i, (tok, ty)) in tokens.iter().zip(&types).enumerate() {
        if *ty == TYPE_CONTROL && END_OF_GENERATION.contains(&tok.as_str()) {
            end_of_generation.insert(i as u32);
        }
    }
    let add_bos = md
        .get("tokenizer.ggml.add_bos_token")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(false);
    Ok(Vocab {
        tokenizer,
        token_bytes,
        bos,
        eos,
        end_of_generation,
        add_bos,
    })
}

/// A `tokenizer.json`, with BOS/EOS named by `tokenizer_config.json`.
pub(crate) fn from_files(
    tokenizer_json: &std::path::Path,
    bos_text: Option<&str>,
    eos_text: Option<&str>,
) -> Result<Vocab, String> {
    let tokenizer = Tokenizer::from_file(tokenizer_json).map_err(|e| format!("{}: {e}", tokenizer_json.display()))?;
    let size = tokenizer.get_vocab_size(true);
    let alphabet = byte_alphabet();
    let byte_level = matches!(tokenizer.get_decoder(), Some(tokenizers::DecoderWrapper::ByteLevel(_)));
    let specials: HashSet<u32> = tokenizer
        .get_added_tokens_decoder()
        .iter()
        .filter(|(_, t)| t.special)
        .map(|(id, _)| *id)
        .collect();
    let token_bytes = (0..size as u32)
        .map(|id| {
            let Some(tok) = tokenizer.id_to_token(id) else {
                return Vec::new();
            };
            if specials.contains(&id) {
                tok.into_bytes()
            } else if byte_level {
                byte_level_bytes(&tok, &alphabet)
            } else if let Some(hex) = tok.strip_prefix("<0x").and_then(|h| h.strip_suffix('>')) {
                u8::from_str_radix(hex, 16)
                    .map(|b| vec![b])
                    .unwrap_or_else(|_| tok.into_bytes())
            } else {
                tok.replace('\u{2581}', " ").into_bytes()
            }
        })
        .collect();
    let find = |t: Option<&str>| t.and_then(|t| tokenizer.token_to_id(t));
    let bos = find(bos_text);
    let eos = find(eos_text);
    let mut end_of_generation: HashSet<u32> = eos.into_iter().collect();
    for text in END_OF_GENERATION {
        if let Some(id) = tokenizer.token_to_id(text).filter(|id| specials.contains(id)) {
            end_of_generation.insert(id);
        }
    }
    Ok(Vocab {
        tokenizer,
        token_bytes,
        bos,
        eos,
        end_of_generation,
        add_bos: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_alphabet_is_a_bijection_with_gpt2_spellings() {
        let a = byte_alphabet();
        assert_eq!(a.len(), 256);
        assert_eq!(a[&'Ġ'], b' ');
        assert_eq!(a[&'Ċ'], b'\n');
        assert_eq!(a[&'!'], b'!');
        assert_eq!(byte_level_bytes("ĠÃ©", &a), " é".as_bytes());
    }

    fn metadata(model: &str, pre: &str) -> HashMap<String, GgufValue> {
        let s = |t: &str| GgufValue::String(t.into());
        HashMap::from([
            ("tokenizer.ggml.model".to_string(), s(model)),
            ("tokenizer.ggml.pre".to_string(), s(pre)),
            (
                "tokenizer.ggml.tokens".to_string(),
                GgufValue::Array(vec![s("a"), s("b"), s("ab")]),
            ),
            ("tokenizer.ggml.merges".to_string(), GgufValue::Array(vec![s("a b")])),
        ])
    }

    #[test]
    fn unknown_tokenizers_are_errors_not_guesses() {
        let err = from_gguf(&metadata("llama", "default")).err().unwrap();
        assert!(err.contains("`llama`") && err.contains("tokenizer.json"), "{err}");
        let err = from_gguf(&metadata("gpt2", "qwen2")).err().unwrap();
        assert!(err.contains("`qwen2`") && err.contains("smollm"), "{err}");
        let vocab = from_gguf(&metadata("gpt2", "smollm")).unwrap();
        assert_eq!(vocab.encode("ab").unwrap(), [2]);
    }
}
