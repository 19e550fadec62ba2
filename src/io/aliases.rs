//! Tensor aliases in safetensors' `__metadata__`: `save_model` stores a shared tensor once and
//! records each dropped name as `"dropped": "kept"`. Read in one pass, and validated: an alias
//! named like the reserved `__metadata__` key, or aliases that lead round in a cycle, are errors,
//! and a file paramscope writes is checked by the same rules before it replaces anything.

use std::collections::{HashMap, HashSet};

use crate::text::escape;

/// The header key that holds the metadata, which no tensor (and so no alias) may be named.
pub const RESERVED: &str = "__metadata__";

/// Why a file's aliases cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AliasError {
    /// An alias carries the reserved name.
    #[error("__metadata__ maps the reserved name {RESERVED} to tensor {}", escape(.0))]
    Reserved(String),
    /// Following aliases comes back to where it started.
    #[error("__metadata__ aliases form a cycle through {}", escape(.0))]
    Cycle(String),
}

/// The aliases among `metadata`: `(dropped, kept)` for each entry whose value names a stored
/// tensor (directly, or through other aliases) and whose key does not. Entries that lead to no
/// tensor are ordinary metadata (`"format": "pt"`). Linear time: each key is followed once.
pub fn resolve<'m>(
    metadata: impl IntoIterator<Item = (&'m str, &'m str)>,
    tensors: &HashSet<&str>,
) -> Result<Vec<(String, String)>, AliasError> {
    let map: Vec<(&str, &str)> = metadata.into_iter().collect();
    let next: HashMap<&str, &str> = map.iter().copied().collect();
    // The stored tensor each key leads to (None: ordinary metadata), filled as keys are followed.
    let mut leads: HashMap<&str, Option<&str>> = HashMap::new();
    let mut aliases = Vec::new();
    for &(key, _) in &map {
        if tensors.contains(key) {
            continue;
        }
        let kept = follow(key, &next, tensors, &mut leads)?;
        if let Some(kept) = kept {
            if key == RESERVED {
                return Err(AliasError::Reserved(kept.to_owned()));
            }
            aliases.push((key.to_owned(), kept.to_owned()));
        }
    }
    Ok(aliases)
}

/// Where `start` leads, walking `next` until a stored tensor, a dead end, or a key already known.
fn follow<'m>(
    start: &'m str,
    next: &HashMap<&'m str, &'m str>,
    tensors: &HashSet<&str>,
    leads: &mut HashMap<&'m str, Option<&'m str>>,
) -> Result<Option<&'m str>, AliasError> {
    let mut path = Vec::new();
    let mut on_path = HashSet::new();
    let mut at = start;
    let end = loop {
        if let Some(known) = leads.get(at) {
            break *known;
        }
        if tensors.contains(at) {
            break Some(at);
        }
        let Some(&to) = next.get(at) else {
            break None;
        };
        if !on_path.insert(at) {
            return Err(AliasError::Cycle(at.to_owned()));
        }
        path.push(at);
        at = to;
    };
    for key in path {
        leads.insert(key, end);
    }
    Ok(end)
}

/// Checks `metadata` against `tensors` by the rules of [`resolve`]: for a file about to be written.
pub fn check<'m>(
    metadata: &'m std::collections::BTreeMap<String, String>,
    tensors: impl Iterator<Item = &'m str>,
) -> Result<(), String> {
    let tensors: HashSet<&str> = tensors.collect();
    if tensors.contains(RESERVED) {
        return Err(format!("a tensor is named {RESERVED}"));
    }
    resolve(
        metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &tensors,
    )
    .map(drop)
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pairs: &[(&str, &str)], tensors: &[&str]) -> Result<Vec<(String, String)>, AliasError> {
        let tensors: HashSet<&str> = tensors.iter().copied().collect();
        resolve(pairs.iter().copied(), &tensors)
    }

    #[test]
    fn aliases_are_entries_that_lead_to_a_tensor() {
        let found = run(
            &[
                ("4.weight", "2.weight"),
                ("format", "pt"),
                ("6.weight", "4.weight"),
            ],
            &["2.weight"],
        )
        .unwrap();
        assert_eq!(
            found,
            [
                ("4.weight".to_owned(), "2.weight".to_owned()),
                ("6.weight".to_owned(), "2.weight".to_owned())
            ]
        );
        // A stored tensor keeps its own data whatever the metadata says.
        assert!(
            run(&[("2.weight", "3.weight")], &["2.weight", "3.weight"])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn reserved_names_and_cycles_are_errors() {
        assert_eq!(
            run(&[(RESERVED, "a")], &["a"]),
            Err(AliasError::Reserved("a".into()))
        );
        assert!(matches!(
            run(&[("a", "b"), ("b", "a")], &["c"]),
            Err(AliasError::Cycle(_))
        ));
        assert!(matches!(run(&[("a", "a")], &[]), Err(AliasError::Cycle(_))));
    }

    #[test]
    fn a_long_chain_resolves_in_linear_time() {
        let keys: Vec<String> = (0..200_000).map(|i| format!("k{i}")).collect();
        let mut pairs: Vec<(&str, &str)> = keys
            .windows(2)
            .map(|w| (w[0].as_str(), w[1].as_str()))
            .collect();
        pairs.push((keys[keys.len() - 1].as_str(), "t"));
        let found = run(&pairs, &["t"]).unwrap();
        assert_eq!(found.len(), keys.len());
        assert!(found.iter().all(|(_, kept)| kept == "t"));
    }
}
