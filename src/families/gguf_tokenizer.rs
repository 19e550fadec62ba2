//! The tokenizer a GGUF file describes in its metadata (`tokenizer.ggml.*`), built with the
//! `tokenizers` crate as transformers builds it (`integrations/gguf/gguf_tokenizer_mapping.py`):
//! `gpt2` a byte-level BPE with the file's merges and the pre-tokenizer `tokenizer.ggml.pre` names,
//! `llama` a SentencePiece-style BPE with byte fallback whose merges come from the scores; control
//! tokens special, `add_bos_token` / `add_eos_token` as the file says. So a text gives the ids
//! `AutoTokenizer.from_pretrained(folder, gguf_file=...)` gives.

use std::path::Path;

use serde_json::{Map, Value as Json, json};

use super::gguf_config::get;
use super::tokenize::{BpeParts, TextTokenizer, TokenizeError};
use crate::io::gguf::{self, Value};

/// llama.cpp's token types that matter here.
const CONTROL: u64 = 3;
const USER_DEFINED: u64 = 4;

/// The tokenizer of the GGUF file at `path`.
pub fn open(path: &Path) -> Result<TextTokenizer, TokenizeError> {
    let fail = |reason: String| TokenizeError::Read {
        path: path.to_owned(),
        reason,
    };
    // The vocabulary and merges are needed whole: the header is read again keeping every item,
    // and dropped once the parts are made from it.
    let parts = {
        let mut file = gguf::open(path, usize::MAX).map_err(|e| fail(e.to_string()))?;
        build(&mut file.metadata).map_err(fail)?
    };
    TextTokenizer::from_bpe(parts, path.to_owned())
}

/// The `tokenizer.ggml.model` of `metadata` (`gpt2`, `llama`), when it names one.
#[must_use]
pub fn kind(metadata: &[(String, Value)]) -> Option<&str> {
    match get(metadata, "tokenizer.ggml.model") {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// The parts of the tokenizer transformers would build from `metadata`.
pub fn build(metadata: &mut [(String, Value)]) -> Result<BpeParts, String> {
    let model = kind(metadata)
        .ok_or("the file has no tokenizer.ggml.model")?
        .to_owned();
    let tokens: Vec<String> = strings(metadata, "tokenizer.ggml.tokens")?;
    let types = integers(metadata, "tokenizer.ggml.token_type").unwrap_or_default();
    let byte_level = model == "gpt2";
    let bpe = match model.as_str() {
        "gpt2" => byte_level_bpe(metadata, tokens)?,
        "llama" => sentencepiece_bpe(metadata, tokens)?,
        other => {
            return Err(format!(
                "tokenizer.ggml.model {other:?} is not one paramscope builds (gpt2, llama)"
            ));
        }
    };
    let id = |key: &str| get(metadata, key).and_then(Value::as_u64);
    let token_of = |key: &str| {
        id(key)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| bpe.vocab.get(i).map(|t| (i, t.clone())))
    };
    // transformers makes the file's special tokens and every control token special added tokens
    // (a byte-level one only when it is spelled in the byte alphabet), user-defined ones plain.
    let mut added: Vec<(usize, String, bool)> = Vec::new();
    let mut push = |i: usize, token: &str, special: bool| {
        if !added.iter().any(|(j, ..)| *j == i) {
            added.push((i, token.to_owned(), special));
        }
    };
    for key in [
        "tokenizer.ggml.unknown_token_id",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.padding_token_id",
    ] {
        if let Some((i, t)) = token_of(key) {
            push(i, &t, true);
        }
    }
    for (i, (token, ty)) in bpe.vocab.iter().zip(&types).enumerate() {
        if *ty == CONTROL && (!byte_level || token.chars().all(in_byte_alphabet)) {
            push(i, token, true);
        } else if *ty == USER_DEFINED {
            push(i, token, false);
        }
    }
    added.sort_by_key(|(i, ..)| *i);
    let flag = |key: &str, default: bool| match get(metadata, key) {
        Some(Value::Bool(b)) => *b,
        _ => default,
    };
    // Older llama files have no flag, and llama.cpp adds BOS to a SentencePiece vocabulary then.
    let add_bos = flag("tokenizer.ggml.add_bos_token", model == "llama");
    let add_eos = flag("tokenizer.ggml.add_eos_token", false);
    let bos = token_of("tokenizer.ggml.bos_token_id").filter(|_| add_bos);
    let eos = token_of("tokenizer.ggml.eos_token_id").filter(|_| add_eos);
    Ok(BpeParts {
        post_processor: template(bos.as_ref(), eos.as_ref()),
        vocab: bpe.vocab,
        merges: bpe.merges,
        byte_fallback: bpe.byte_fallback,
        fuse_unk: bpe.byte_fallback,
        pre_tokenizer: bpe.pre_tokenizer,
        decoder: bpe.decoder,
        added,
    })
}

/// A metadata array of strings, whole, taken out of `metadata` (its 49,152 tokens or merges are
/// moved, not copied, into the tokenizer's parts).
fn strings(metadata: &mut [(String, Value)], key: &str) -> Result<Vec<String>, String> {
    whole(metadata, key)?;
    let Some((_, Value::Array(array))) = metadata.iter_mut().find(|(k, _)| k == key) else {
        unreachable!("`whole` found the array");
    };
    std::mem::take(&mut array.head)
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            other => Err(format!("{key} holds {other}, not strings")),
        })
        .collect()
}

/// A metadata array of numbers, whole.
fn integers(metadata: &[(String, Value)], key: &str) -> Result<Vec<u64>, String> {
    whole(metadata, key)?
        .iter()
        .map(|v| {
            v.as_u64()
                .ok_or_else(|| format!("{key} holds {v}, not integers"))
        })
        .collect()
}

/// A metadata array of floats, whole.
fn floats(metadata: &[(String, Value)], key: &str) -> Result<Vec<f64>, String> {
    whole(metadata, key)?
        .iter()
        .map(|v| match v {
            Value::Float(_, f) => Ok(*f),
            other => Err(format!("{key} holds {other}, not floats")),
        })
        .collect()
}

fn whole<'a>(metadata: &'a [(String, Value)], key: &str) -> Result<&'a [Value], String> {
    match get(metadata, key) {
        Some(Value::Array(a)) if a.head.len() as u64 == a.len => Ok(&a.head),
        Some(Value::Array(_)) => Err(format!("{key} was not read whole")),
        Some(other) => Err(format!("{key} is {other}, not an array")),
        None => Err(format!("the file has no {key}")),
    }
}

/// `[bos] $A [eos]`, as transformers' `update_post_processor` writes it.
fn template(bos: Option<&(usize, String)>, eos: Option<&(usize, String)>) -> Json {
    let special = |(_, t): &(usize, String), type_id: u32| json!({"SpecialToken": {"id": t, "type_id": type_id}});
    let sequence = |id: &str, type_id: u32| json!({"Sequence": {"id": id, "type_id": type_id}});
    let mut single = Vec::new();
    let mut pair = Vec::new();
    for (part, type_id, list) in [("A", 0, &mut single), ("B", 1, &mut pair)] {
        if let Some(b) = bos {
            list.push(special(b, type_id));
        }
        list.push(sequence(part, type_id));
        if let Some(e) = eos {
            list.push(special(e, type_id));
        }
    }
    let pair: Vec<Json> = single.iter().cloned().chain(pair).collect();
    let mut specials = Map::new();
    for (i, t) in bos.into_iter().chain(eos) {
        specials.insert(t.clone(), json!({"id": t, "ids": [i], "tokens": [t]}));
    }
    json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials})
}

/// A BPE model as transformers builds it from a GGUF file: the tokens as its vocabulary spells
/// them, its merges, and its pre-tokenizer and decoder (as `tokenizer.json` spells them).
struct Bpe {
    vocab: Vec<String>,
    merges: Vec<(String, String)>,
    /// SentencePiece-style: unknown bytes become `<0xNN>` tokens, and unknown runs fuse.
    byte_fallback: bool,
    pre_tokenizer: Json,
    decoder: Json,
}

/// `a b` as the pair it spells.
fn merge(m: &str) -> (String, String) {
    let (a, b) = m.split_once(' ').unwrap_or((m, ""));
    (a.to_owned(), b.to_owned())
}

/// Byte-level BPE (`GPT2Tokenizer`): tokens not spelled in the byte alphabet respelled in it,
/// the file's merges, the split `tokenizer.ggml.pre` names (GPT-2's own otherwise).
fn byte_level_bpe(metadata: &mut [(String, Value)], tokens: Vec<String>) -> Result<Bpe, String> {
    let vocab: Vec<String> = tokens
        .into_iter()
        .map(|t| {
            if t.chars().all(in_byte_alphabet) {
                t
            } else {
                t.bytes().map(byte_char).collect()
            }
        })
        .collect();
    let merges = strings(metadata, "tokenizer.ggml.merges")?
        .iter()
        .map(|m| merge(m))
        .collect();
    let pre = match get(metadata, "tokenizer.ggml.pre") {
        Some(Value::String(p)) => split_regex(p),
        _ => None,
    };
    let pre_tokenizer = match pre {
        Some(regex) => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
        ]}),
        None => {
            json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})
        }
    };
    let decoder = json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true});
    Ok(Bpe {
        vocab,
        merges,
        byte_fallback: false,
        pre_tokenizer,
        decoder,
    })
}

/// SentencePiece-style BPE (`LlamaTokenizer`): byte fallback, `▁` for spaces with one prepended,
/// merges the file's own or (as nearly always) recovered from the pieces' scores.
fn sentencepiece_bpe(metadata: &mut [(String, Value)], tokens: Vec<String>) -> Result<Bpe, String> {
    let merges = if get(metadata, "tokenizer.ggml.merges").is_some() {
        strings(metadata, "tokenizer.ggml.merges")?
            .iter()
            .map(|m| merge(m))
            .collect()
    } else {
        let scores = floats(metadata, "tokenizer.ggml.scores")?;
        merges_from_scores(&tokens, &scores)
    };
    let pre_tokenizer =
        json!({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false});
    let decoder = json!({"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"},
        {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0},
    ]});
    Ok(Bpe {
        vocab: tokens,
        merges,
        byte_fallback: true,
        pre_tokenizer,
        decoder,
    })
}

/// The longest token (in bytes) whose splits are looked for.
const MAX_SPLIT: usize = 1024;

/// transformers' `generate_merges(vocab, scores)`: every split of a token into two tokens, each
/// token's splits ordered by the halves' ids, then all of them by score, best first, then by the
/// halves' lengths, longest first (a stable sort, so ties keep that order).
fn merges_from_scores(tokens: &[String], scores: &[f64]) -> Vec<(String, String)> {
    use std::collections::HashMap;
    let ids: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    // A dict built from (token, score) pairs: a repeated token keeps its first place, last score.
    let mut order: Vec<&str> = Vec::new();
    let mut score: HashMap<&str, f64> = HashMap::new();
    for (t, s) in tokens.iter().zip(scores) {
        if score.insert(t.as_str(), *s).is_none() {
            order.push(t);
        }
    }
    let mut merges: Vec<(&str, &str, f64)> = Vec::new();
    // Each split hashes both halves: a token longer than any real one (a hostile file's 64 KiB
    // string) would cost its length squared, so it is not split.
    for token in order.into_iter().filter(|t| t.len() <= MAX_SPLIT) {
        let mut local: Vec<(&str, &str, f64)> = token
            .char_indices()
            .skip(1)
            .map(|(at, _)| token.split_at(at))
            .filter(|(l, r)| ids.contains_key(l) && ids.contains_key(r))
            .map(|(l, r)| (l, r, score[token]))
            .collect();
        local.sort_by_key(|(l, r, _)| (ids[l], ids[r]));
        merges.extend(local);
    }
    let len = |s: &str| s.chars().count();
    merges.sort_by(|a, b| {
        b.2.total_cmp(&a.2)
            .then(len(b.0).cmp(&len(a.0)))
            .then(len(b.1).cmp(&len(a.1)))
    });
    merges
        .into_iter()
        .map(|(l, r, _)| (l.to_owned(), r.to_owned()))
        .collect()
}

/// The split pattern transformers gives a byte-level vocabulary of `tokenizer.ggml.pre`, when it
/// gives one (GPT-2's own regex otherwise).
fn split_regex(pre: &str) -> Option<&'static str> {
    const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    Some(match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" | "dbrx" | "smaug-bpe" => LLAMA3,
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" => QWEN2,
        _ => return None,
    })
}

/// Whether `c` is one of GPT-2's 256 byte characters (`bytes_to_unicode`).
fn in_byte_alphabet(c: char) -> bool {
    let c = u32::from(c);
    (33..=126).contains(&c)
        || (161..=172).contains(&c)
        || (174..=255).contains(&c)
        || (256..=323).contains(&c)
}

/// GPT-2's character for byte `b`: printable Latin-1 bytes stand for themselves, the 68 others
/// for the characters from U+0100 on, in order.
fn byte_char(b: u8) -> char {
    let printable = |b: u8| matches!(b, 33..=126 | 161..=172 | 174..=255);
    if printable(b) {
        return char::from(b);
    }
    let n = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + n).expect("below U+0144")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_characters_are_gpt2s() {
        assert_eq!(byte_char(b' '), 'Ġ');
        assert_eq!(byte_char(b'\n'), 'Ċ');
        assert_eq!(byte_char(b'a'), 'a');
        assert!((0..=255u8).all(|b| in_byte_alphabet(byte_char(b))));
        assert!(!in_byte_alphabet(' '));
    }

    #[test]
    fn merges_follow_scores_then_lengths() {
        let tokens: Vec<String> = ["a", "b", "c", "ab", "abc", "bc"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let scores = [0.0, 0.0, 0.0, -1.0, -3.0, -2.0];
        let m = merges_from_scores(&tokens, &scores);
        let pairs: Vec<(&str, &str)> = m.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        // ab (-1), bc (-2), then abc's splits (-3): "ab"+"c" (longer left) before "a"+"bc".
        assert_eq!(pairs, [("a", "b"), ("b", "c"), ("ab", "c"), ("a", "bc")]);
    }

    fn strings_value(items: &[&str]) -> Value {
        Value::Array(gguf::value::Array {
            item: gguf::ValueType::String,
            len: items.len() as u64,
            head: items
                .iter()
                .map(|s| Value::String((*s).to_owned()))
                .collect(),
        })
    }

    /// A file's merge naming a token its vocabulary lacks is one error naming the file, not a
    /// panic: the crate's builder refuses it, and the parts are built under the panic guard.
    #[test]
    fn merges_of_unknown_tokens_are_an_error() {
        let mut metadata = vec![
            (
                "tokenizer.ggml.model".to_owned(),
                Value::String("gpt2".to_owned()),
            ),
            (
                "tokenizer.ggml.tokens".to_owned(),
                strings_value(&["a", "b", "ab"]),
            ),
            (
                "tokenizer.ggml.merges".to_owned(),
                strings_value(&["a b", "a zz"]),
            ),
        ];
        let parts = build(&mut metadata).unwrap();
        assert_eq!(parts.vocab, ["a", "b", "ab"]);
        let Err(e) = TextTokenizer::from_bpe(parts, "bad.gguf".into()) else {
            panic!("a merge of an unknown token was accepted");
        };
        let message = e.to_string();
        assert!(
            message.starts_with("bad.gguf: ") && message.contains("zz"),
            "{message}"
        );

        let mut metadata = vec![
            (
                "tokenizer.ggml.model".to_owned(),
                Value::String("gpt2".to_owned()),
            ),
            (
                "tokenizer.ggml.tokens".to_owned(),
                strings_value(&["a", "b", "ab"]),
            ),
            ("tokenizer.ggml.merges".to_owned(), strings_value(&["a b"])),
        ];
        let tokenizer = TextTokenizer::from_bpe(build(&mut metadata).unwrap(), "ok.gguf".into());
        assert_eq!(tokenizer.unwrap().encode("ab").unwrap(), [2]);
    }
}
