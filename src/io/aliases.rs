//! Tensor aliases in safetensors' `__metadata__`: `save_model` stores a shared tensor once and
//! records each dropped name as `"dropped": "kept"`. Read in one pass and validated by one rule,
//! used both when a file is read and before a written file replaces anything:
//!
//! - an entry is an alias when its value names a stored tensor and its key names none (a stored
//!   tensor keeps its own data whatever the metadata says); other entries are plain metadata
//!   (`"format": "pt"`);
//! - so an alias never points at another alias: there are no chains, hence no cycles, to follow;
//! - an alias may not carry the reserved name `__metadata__`, which as a tensor name would collide
//!   with the header's metadata key in any file written from it.

use std::collections::HashSet;

/// The header key that holds the metadata, which no tensor (and so no alias) may be named.
pub const RESERVED: &str = "__metadata__";

/// Why a file's aliases cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AliasError {
    /// An alias carries the reserved name.
    #[error("__metadata__ maps the reserved name {RESERVED} to tensor {0}")]
    Reserved(String),
    /// A tensor carries the reserved name.
    #[error("a tensor is named {RESERVED}")]
    ReservedTensor,
}

/// The aliases among `metadata` as `(dropped, kept)`, in the metadata's order. Linear time.
pub fn resolve<'m, S: std::hash::BuildHasher>(
    metadata: impl IntoIterator<Item = (&'m str, &'m str)>,
    tensors: &HashSet<&str, S>,
) -> Result<Vec<(&'m str, &'m str)>, AliasError> {
    let mut aliases = Vec::new();
    for (key, value) in metadata {
        if !tensors.contains(value) || tensors.contains(key) {
            continue;
        }
        if key == RESERVED {
            return Err(AliasError::Reserved(value.to_owned()));
        }
        aliases.push((key, value));
    }
    Ok(aliases)
}

/// Checks a file about to be written by the rules of [`resolve`], and that no tensor carries the
/// reserved name.
pub fn check<'m>(
    metadata: &'m std::collections::BTreeMap<String, String>,
    tensors: impl Iterator<Item = &'m str>,
) -> Result<(), AliasError> {
    let tensors: HashSet<&str> = tensors.collect();
    if tensors.contains(RESERVED) {
        return Err(AliasError::ReservedTensor);
    }
    resolve(
        metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &tensors,
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<'a>(
        pairs: &[(&'a str, &'a str)],
        tensors: &[&str],
    ) -> Result<Vec<(&'a str, &'a str)>, AliasError> {
        let tensors: HashSet<&str> = tensors.iter().copied().collect();
        resolve(pairs.iter().copied(), &tensors)
    }

    #[test]
    fn aliases_are_entries_that_name_a_tensor() {
        let found = run(
            &[
                ("4.weight", "2.weight"),
                ("format", "pt"),
                ("6.weight", "4.weight"),
            ],
            &["2.weight"],
        )
        .unwrap();
        // 6.weight points at an alias, not at a tensor: plain metadata, not a chain.
        assert_eq!(found, [("4.weight", "2.weight")]);
        assert!(
            run(&[("2.weight", "3.weight")], &["2.weight", "3.weight"])
                .unwrap()
                .is_empty()
        );
        assert!(run(&[("a", "b"), ("b", "a")], &["c"]).unwrap().is_empty());
    }

    #[test]
    fn the_reserved_name_is_an_error() {
        assert_eq!(
            run(&[(RESERVED, "a")], &["a"]),
            Err(AliasError::Reserved("a".into()))
        );
        assert!(run(&[(RESERVED, "nothing")], &["a"]).unwrap().is_empty());
        let mut metadata = std::collections::BTreeMap::new();
        metadata.insert("x".to_owned(), "y".to_owned());
        assert!(check(&metadata, [RESERVED].into_iter()).is_err());
        assert!(check(&metadata, ["y"].into_iter()).is_ok());
    }
}
