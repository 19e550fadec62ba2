//! The globals outside torch's `weights_only` allow-list that any pickle of a file names, gathered
//! over all of the file's pickles (a legacy file's five, every `data.pkl` of a zip), and how they
//! are said: `torch.load(weights_only=False)` would import each one and could run it.

use std::collections::HashSet;
use std::fmt::Write as _;

use crate::io::pickle::{self, Unpickled};

/// The most names said in one message; the rest are counted.
pub const MAX_NAMED: usize = 20;

/// What torch would do with a foreign global, said after its name.
pub const WHAT_TORCH_DOES: &str = "outside torch's weights_only allow-list: torch.load(weights_only=False) would import it and could run it; paramscope did not";

/// The foreign globals of one file's pickles, each once, in the order met.
#[derive(Debug, Default)]
pub struct Foreign {
    /// `module.name`, raw.
    pub globals: Vec<String>,
    seen: HashSet<String>,
}

impl Foreign {
    /// Runs the pickle in `bytes` (at file offset `base`), adding its foreign globals, those named
    /// before an error too.
    pub fn unpickle(&mut self, bytes: &[u8], base: usize) -> Result<Unpickled, pickle::Error> {
        match pickle::unpickle(bytes, base) {
            Ok(unpickled) => {
                self.add(&unpickled.foreign);
                Ok(unpickled)
            }
            Err(mut error) => {
                self.add(&std::mem::take(&mut error.foreign));
                Err(error)
            }
        }
    }

    fn add(&mut self, globals: &[String]) {
        for g in globals {
            if self.seen.insert(g.clone()) {
                self.globals.push(g.clone());
            }
        }
    }

    /// Forgets the globals `keep` accepts (a TorchScript archive's own classes).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.globals.retain(|g| keep(g));
    }
}

/// `a, b, c and 4 more`: the first names of `globals`.
#[must_use]
pub fn list(globals: &[String]) -> String {
    let shown = &globals[..globals.len().min(MAX_NAMED)];
    let mut text = shown.join(", ");
    if globals.len() > shown.len() {
        let _ = write!(text, " and {} more", globals.len() - shown.len());
    }
    text
}
