//! The `o` picker: the demos, `demo-models/`, the current folder's model files, and a typed path
//! (Tab completes it). Typing narrows the list; Enter opens the highlighted entry, or the typed
//! path when nothing in the list holds it.
//!
//! The listings are read when the picker opens and on Tab: a directory read, bounded by
//! [`MAX_ENTRIES`], the one disk access `update` makes, so that a file just written is offered.

use std::path::Path;

use super::error::AppError;
use super::field::{Edit, Field};
use crate::checkpoint::OpenError;
use crate::checkpoint::locate::LocateError;
use crate::model::demos::DEMOS;

/// The most entries read from one folder.
pub const MAX_ENTRIES: usize = 2000;

/// The picker's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Picker {
    /// The typed text: a filter on the list, or a path.
    pub field: Field,
    /// Everything offered, in order.
    pub choices: Vec<String>,
    /// The highlighted row among [`Picker::shown`].
    pub index: usize,
    /// Whether Enter picks the model to compare with (`c`) rather than the one to open (`o`).
    pub compare: bool,
}

impl Picker {
    /// The picker over `choices`, the open model highlighted.
    #[must_use]
    pub fn new(choices: Vec<String>, open: &str) -> Picker {
        let index = choices.iter().position(|c| c == open).unwrap_or(0);
        Picker {
            field: Field::default(),
            choices,
            index,
            compare: false,
        }
    }

    /// The choices that hold the typed text.
    #[must_use]
    pub fn shown(&self) -> Vec<&str> {
        let typed = self.field.value();
        self.choices
            .iter()
            .map(String::as_str)
            .filter(|c| c.contains(typed))
            .collect()
    }

    /// What Enter opens: the highlighted choice, else the typed path.
    #[must_use]
    pub fn chosen(&self) -> Option<String> {
        let shown = self.shown();
        if let Some(choice) = shown.get(self.index.min(shown.len().saturating_sub(1))) {
            return Some((*choice).to_owned());
        }
        let typed = self.field.value().trim();
        (!typed.is_empty()).then(|| typed.to_owned())
    }

    /// Moves the highlight, wrapping.
    pub fn step(&mut self, down: bool) {
        let n = self.shown().len().max(1);
        self.index = if down {
            (self.index + 1) % n
        } else {
            (self.index + n - 1) % n
        };
    }

    /// Edits the typed text; the highlight goes back to the first match.
    pub fn edit(&mut self, edit: Edit) {
        if self.field.edit(edit) {
            self.index = 0;
        }
    }

    /// Tab: completes the typed path as far as the folder's names agree.
    pub fn complete(&mut self) {
        if let Some(done) = complete(self.field.value()) {
            self.field.set(&done);
            self.index = 0;
        }
    }
}

/// The checkpoints of a folder that holds several and no index saying which is the model, as
/// paths to offer in the picker; `None` for any other error.
#[must_use]
pub fn several(error: &AppError) -> Option<Vec<String>> {
    let AppError::Open(OpenError::Folder(LocateError::Several { folder, names })) = error else {
        return None;
    };
    let folder = Path::new(folder);
    Some(
        names
            .iter()
            .map(|name| folder.join(name).display().to_string())
            .collect(),
    )
}

/// The demos, then the model files of `demo-models/` and of the current folder.
#[must_use]
pub fn scan() -> Vec<String> {
    let mut choices: Vec<String> = DEMOS
        .iter()
        .map(|(name, _)| format!("demo:{name}"))
        .collect();
    for folder in ["demo-models", "."] {
        let names = entries(Path::new(folder));
        // An architecture text beside its checkpoint is that checkpoint's, not a model to open.
        let paired = |name: &str| {
            name.strip_suffix(".arch.txt")
                .is_some_and(|stem| names.iter().any(|n| *n == format!("{stem}.safetensors")))
        };
        let mut files: Vec<String> = names
            .iter()
            .filter(|name| is_model_file(name) && !paired(name))
            .cloned()
            .map(|name| {
                if folder == "." {
                    name
                } else {
                    format!("{folder}/{name}")
                }
            })
            .collect();
        files.sort();
        choices.extend(files);
    }
    choices
}

/// Whether a file name looks like something `MODEL` opens.
fn is_model_file(name: &str) -> bool {
    name.ends_with(".safetensors") || name.ends_with(".index.json") || name.ends_with(".arch.txt")
}

/// The names in `folder` (folders with a trailing `/`), at most [`MAX_ENTRIES`].
fn entries(folder: &Path) -> Vec<String> {
    let Ok(read) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    read.flatten()
        .take(MAX_ENTRIES)
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_owned();
            let dir = entry.file_type().is_ok_and(|t| t.is_dir());
            Some(if dir { format!("{name}/") } else { name })
        })
        .collect()
}

/// `typed` completed to the longest prefix its folder's matching names share; `None` when no
/// name matches.
#[must_use]
pub fn complete(typed: &str) -> Option<String> {
    let (folder, prefix) = match typed.rfind('/') {
        Some(at) => (&typed[..=at], &typed[at + 1..]),
        None => ("", typed),
    };
    let dir = if folder.is_empty() { "." } else { folder };
    let names: Vec<String> = entries(Path::new(dir))
        .into_iter()
        // Hidden names only when asked for.
        .filter(|n| n.starts_with(prefix) && (!n.starts_with('.') || prefix.starts_with('.')))
        .collect();
    let first = names.first()?;
    let mut common = first.len();
    for name in &names[1..] {
        common = common.min(
            first
                .char_indices()
                .zip(name.chars())
                .find(|((_, a), b)| a != b)
                .map_or(first.len().min(name.len()), |((i, _), _)| i),
        );
    }
    Some(format!("{folder}{}", &first[..common]))
}

#[cfg(test)]
mod tests {
    use super::{Picker, complete};

    #[test]
    fn tab_completes_as_far_as_the_names_agree() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["net.safetensors", "net.reinit.safetensors", "other.txt"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let base = format!("{}/", dir.path().display());
        assert_eq!(complete(&format!("{base}ne")), Some(format!("{base}net.")));
        assert_eq!(
            complete(&format!("{base}net.r")),
            Some(format!("{base}net.reinit.safetensors"))
        );
        assert_eq!(complete(&format!("{base}zz")), None);
    }

    #[test]
    fn typing_narrows_the_list_and_an_unlisted_path_is_opened_as_typed() {
        let mut p = Picker::new(vec!["demo:mlp".into(), "demo:rgnet".into()], "demo:rgnet");
        assert_eq!(p.chosen().as_deref(), Some("demo:rgnet"));
        p.edit(super::Edit::Insert('l'));
        assert_eq!(p.shown(), ["demo:mlp"]);
        assert_eq!(p.chosen().as_deref(), Some("demo:mlp"));
        p.field.set("x/y.safetensors");
        assert_eq!(p.chosen().as_deref(), Some("x/y.safetensors"));
    }
}
