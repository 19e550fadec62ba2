//! What an architecture text or its binding to a checkpoint gets wrong, as data.

use std::fmt;

/// A layer's head that does not read as a layer paramscope knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    /// A class paramscope does not know.
    #[error("unknown module kind {class:?} (paramscope knows Sequential, {known})")]
    UnknownKind {
        /// The class.
        class: String,
        /// The classes it knows, comma-separated.
        known: String,
    },
    /// An argument that is not `key=value`.
    #[error("{class}: expected key=value, found {found:?}")]
    NotKeyValue {
        /// The class.
        class: String,
        /// The argument (cut to 60 characters).
        found: String,
    },
    /// A value that should be a number.
    #[error("{class}: {key}={value} is not a number")]
    NotNumber {
        /// The class.
        class: String,
        /// The argument.
        key: String,
        /// Its value.
        value: String,
    },
    /// A Linear without one of its sizes.
    #[error("Linear needs {0}")]
    LinearNeeds(String),
    /// A Linear size that is not a whole number.
    #[error("Linear: {0} must be a whole number")]
    NotWhole(String),
    /// A Linear bias that is neither True nor False.
    #[error("Linear: bias={0} is not True or False")]
    Bias(String),
    /// A GELU approximation PyTorch does not have.
    #[error("GELU: approximate={0} is not 'none' or 'tanh'")]
    Approximate(String),
    /// A Flatten dimension that is not an integer.
    #[error("Flatten: {key}={value} is not an integer")]
    NotInteger {
        /// The argument.
        key: String,
        /// Its value.
        value: String,
    },
    /// An argument the class does not take.
    #[error("{class} has no argument {key:?}")]
    NoArgument {
        /// The class.
        class: String,
        /// The argument.
        key: String,
    },
}

/// One way a checkpoint does not fit an architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindProblem {
    /// A parameter the architecture needs and the checkpoint lacks.
    Missing(String),
    /// A parameter of another shape.
    Shape {
        /// Its key.
        key: String,
        /// The checkpoint's shape.
        found: Vec<usize>,
        /// The architecture's.
        needed: Vec<usize>,
    },
    /// Tensors the architecture has no place for.
    Unexpected(Vec<String>),
}

impl fmt::Display for BindProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindProblem::Missing(key) => write!(f, "missing key {key}"),
            BindProblem::Shape { key, found, needed } => {
                write!(
                    f,
                    "{key} has shape {found:?}, the architecture needs {needed:?}"
                )
            }
            BindProblem::Unexpected(keys) => write!(
                f,
                "unexpected key(s) in the checkpoint: {}",
                keys.join(", ")
            ),
        }
    }
}

/// A checkpoint that does not fit an architecture, as PyTorch's `load_state_dict(strict=True)`
/// would refuse it: every problem, in the order found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindError(pub Vec<BindProblem>);

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the checkpoint does not fit the architecture: ")?;
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for BindError {}
