//! Every `torch.nn.init` scheme as data: its name, PyTorch's arguments and defaults, reading it
//! from `NAME[:k=v,...]` and writing it back.
//!
//! The formulas that draw values are in [`formulas`]; applying a scheme to a subtree as
//! `net.apply(fn)` does is in [`apply`].

mod apply;
mod formulas;

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

pub use apply::{InitPlan, InitReport};
pub use formulas::{calculate_gain, fans};

/// Fan mode of the Kaiming schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanMode {
    /// Preserve the variance of the forward pass.
    FanIn,
    /// Preserve the variance of the backward pass.
    FanOut,
}

/// A `torch.nn.init` scheme with its arguments, named as PyTorch names them.
#[derive(Debug, Clone, PartialEq)]
pub enum InitScheme {
    /// `zeros_`.
    Zeros,
    /// `ones_`.
    Ones,
    /// `constant_(val)`.
    Constant {
        /// The value.
        val: f64,
    },
    /// `uniform_(a, b)`: U(a, b).
    Uniform {
        /// Lower bound.
        a: f64,
        /// Upper bound.
        b: f64,
    },
    /// `normal_(mean, std)`.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
    /// `xavier_uniform_(gain)`: U(-a, a), a = gain·√(6/(fan_in+fan_out)).
    XavierUniform {
        /// Scaling factor.
        gain: f64,
    },
    /// `xavier_normal_(gain)`: N(0, gain²·2/(fan_in+fan_out)).
    XavierNormal {
        /// Scaling factor.
        gain: f64,
    },
    /// `kaiming_uniform_(a, mode, nonlinearity)`: U(-b, b), b = gain·√(3/fan).
    KaimingUniform {
        /// Negative slope of the rectifier (for `leaky_relu`).
        a: f64,
        /// Which fan to preserve.
        mode: FanMode,
        /// The nonlinearity the gain is computed for.
        nonlinearity: String,
    },
    /// `kaiming_normal_(a, mode, nonlinearity)`: N(0, (gain/√fan)²).
    KaimingNormal {
        /// Negative slope of the rectifier (for `leaky_relu`).
        a: f64,
        /// Which fan to preserve.
        mode: FanMode,
        /// The nonlinearity the gain is computed for.
        nonlinearity: String,
    },
    /// `trunc_normal_(mean, std, a, b)`: N(mean, std²) truncated to the absolute range [a, b].
    TruncNormal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
        /// Lower cut-off.
        a: f64,
        /// Upper cut-off.
        b: f64,
    },
    /// `orthogonal_(gain)`: a (semi-)orthogonal matrix from the QR of a normal one.
    Orthogonal {
        /// Scaling factor.
        gain: f64,
    },
    /// `nn.Linear.reset_parameters`: weight kaiming_uniform(a=√5), bias U(±1/√fan_in).
    Default,
    /// The chapter's `my_init`: U(a, b), then every |w| < threshold set to zero.
    MaskedUniform {
        /// Lower bound.
        a: f64,
        /// Upper bound.
        b: f64,
        /// Magnitudes below this become zero.
        threshold: f64,
    },
}

/// Why a scheme could not be read or applied.
#[derive(Debug, Error, PartialEq)]
pub enum InitError {
    /// The scheme's name is not one paramscope knows.
    #[error("unknown init scheme {name:?}{hint}; known: {}", InitScheme::ALL.join(", "))]
    UnknownScheme {
        /// What was asked for.
        name: String,
        /// A suggestion, starting with "; ".
        hint: String,
    },
    /// A `k=v` names an argument the scheme does not take.
    #[error("{scheme} takes no argument {key:?}; it takes: {accepted}")]
    UnknownArgument {
        /// The scheme.
        scheme: &'static str,
        /// The argument given.
        key: String,
        /// What it accepts.
        accepted: String,
    },
    /// An argument's value is not valid.
    #[error("{scheme}: bad value for {key}: {reason}")]
    BadValue {
        /// The scheme.
        scheme: &'static str,
        /// The argument.
        key: String,
        /// Why.
        reason: String,
    },
    /// The scheme does not fit this tensor (fans of a 1-D tensor, …).
    #[error("{scheme} cannot initialize a tensor of shape {shape:?}: {reason}")]
    Unfit {
        /// The scheme.
        scheme: &'static str,
        /// The tensor's shape.
        shape: Vec<usize>,
        /// PyTorch's reason.
        reason: String,
    },
}

/// The nonlinearities `calculate_gain` knows, as PyTorch names them.
pub const NONLINEARITIES: [&str; 11] = [
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
];

/// Where a tensor sits, for the schemes whose formula depends on it (`default`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A weight (or any tensor outside a Linear).
    Weight,
    /// A Linear's bias; `fan_in` is that of its weight.
    Bias {
        /// The fan-in of the layer's weight.
        fan_in: usize,
    },
}

impl InitScheme {
    /// Every scheme's name, in the order a menu lists them.
    pub const ALL: [&'static str; 13] = [
        "default",
        "zeros",
        "ones",
        "constant",
        "uniform",
        "normal",
        "xavier_uniform",
        "xavier_normal",
        "kaiming_uniform",
        "kaiming_normal",
        "trunc_normal",
        "orthogonal",
        "masked_uniform",
    ];

    /// The scheme's name as written on the command line.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            InitScheme::Zeros => "zeros",
            InitScheme::Ones => "ones",
            InitScheme::Constant { .. } => "constant",
            InitScheme::Uniform { .. } => "uniform",
            InitScheme::Normal { .. } => "normal",
            InitScheme::XavierUniform { .. } => "xavier_uniform",
            InitScheme::XavierNormal { .. } => "xavier_normal",
            InitScheme::KaimingUniform { .. } => "kaiming_uniform",
            InitScheme::KaimingNormal { .. } => "kaiming_normal",
            InitScheme::TruncNormal { .. } => "trunc_normal",
            InitScheme::Orthogonal { .. } => "orthogonal",
            InitScheme::Default => "default",
            InitScheme::MaskedUniform { .. } => "masked_uniform",
        }
    }

    /// The scheme with PyTorch's default arguments (`uniform` is U(0, 1), `normal` N(0, 1), …).
    pub fn with_defaults(name: &str) -> Result<InitScheme, InitError> {
        let kaiming = |uniform: bool| {
            let (a, mode, nonlinearity) = (0.0, FanMode::FanIn, "leaky_relu".to_owned());
            if uniform {
                InitScheme::KaimingUniform {
                    a,
                    mode,
                    nonlinearity,
                }
            } else {
                InitScheme::KaimingNormal {
                    a,
                    mode,
                    nonlinearity,
                }
            }
        };
        Ok(match name {
            "zeros" => InitScheme::Zeros,
            "ones" => InitScheme::Ones,
            "constant" => InitScheme::Constant { val: 0.0 },
            "uniform" => InitScheme::Uniform { a: 0.0, b: 1.0 },
            "normal" => InitScheme::Normal {
                mean: 0.0,
                std: 1.0,
            },
            "xavier_uniform" => InitScheme::XavierUniform { gain: 1.0 },
            "xavier_normal" => InitScheme::XavierNormal { gain: 1.0 },
            "kaiming_uniform" => kaiming(true),
            "kaiming_normal" => kaiming(false),
            "trunc_normal" => InitScheme::TruncNormal {
                mean: 0.0,
                std: 1.0,
                a: -2.0,
                b: 2.0,
            },
            "orthogonal" => InitScheme::Orthogonal { gain: 1.0 },
            "default" => InitScheme::Default,
            "masked_uniform" => InitScheme::MaskedUniform {
                a: -10.0,
                b: 10.0,
                threshold: 5.0,
            },
            other => {
                return Err(InitError::UnknownScheme {
                    name: other.to_owned(),
                    hint: crate::model::did_you_mean(other, InitScheme::ALL.into_iter())
                        .unwrap_or_default(),
                });
            }
        })
    }

    /// The scheme's arguments as `(name, value)` in PyTorch's order, for display and editing.
    #[must_use]
    pub fn arguments(&self) -> Vec<(&'static str, String)> {
        let num = |v: &f64| super::layers::python_float(*v);
        let mode = |m: &FanMode| match m {
            FanMode::FanIn => "fan_in".to_owned(),
            FanMode::FanOut => "fan_out".to_owned(),
        };
        match self {
            InitScheme::Zeros | InitScheme::Ones | InitScheme::Default => vec![],
            InitScheme::Constant { val } => vec![("val", num(val))],
            InitScheme::Uniform { a, b } => vec![("a", num(a)), ("b", num(b))],
            InitScheme::Normal { mean, std } => vec![("mean", num(mean)), ("std", num(std))],
            InitScheme::XavierUniform { gain }
            | InitScheme::XavierNormal { gain }
            | InitScheme::Orthogonal { gain } => vec![("gain", num(gain))],
            InitScheme::KaimingUniform {
                a,
                mode: m,
                nonlinearity,
            }
            | InitScheme::KaimingNormal {
                a,
                mode: m,
                nonlinearity,
            } => vec![
                ("a", num(a)),
                ("mode", mode(m)),
                ("nonlinearity", nonlinearity.clone()),
            ],
            InitScheme::TruncNormal { mean, std, a, b } => vec![
                ("mean", num(mean)),
                ("std", num(std)),
                ("a", num(a)),
                ("b", num(b)),
            ],
            InitScheme::MaskedUniform { a, b, threshold } => {
                vec![("a", num(a)), ("b", num(b)), ("threshold", num(threshold))]
            }
        }
    }

    /// Sets one argument from its text, then checks the whole combination as PyTorch would.
    pub fn set_argument(&mut self, key: &str, value: &str) -> Result<(), InitError> {
        self.assign(key, value)?;
        self.check()
    }

    /// Sets one argument from its text, checking only that value on its own: the combination
    /// (`a <= b`) is checked once every argument is in ([`check`](Self::check)), so the order
    /// in which they are written does not matter.
    fn assign(&mut self, key: &str, value: &str) -> Result<(), InitError> {
        let scheme = self.name();
        let bad = |reason: String| InitError::BadValue {
            scheme,
            key: key.to_owned(),
            reason,
        };
        let number = || -> Result<f64, InitError> {
            let v: f64 = value
                .trim()
                .parse()
                .map_err(|_| bad(format!("{value:?} is not a number")))?;
            if v.is_finite() {
                Ok(v)
            } else {
                Err(bad(format!("{value:?} is not finite")))
            }
        };
        let slot: &mut f64 = match (&mut *self, key) {
            (InitScheme::Constant { val }, "val") => val,
            (
                InitScheme::Uniform { a, .. }
                | InitScheme::TruncNormal { a, .. }
                | InitScheme::MaskedUniform { a, .. }
                | InitScheme::KaimingUniform { a, .. }
                | InitScheme::KaimingNormal { a, .. },
                "a",
            ) => a,
            (
                InitScheme::Uniform { b, .. }
                | InitScheme::TruncNormal { b, .. }
                | InitScheme::MaskedUniform { b, .. },
                "b",
            ) => b,
            (InitScheme::Normal { mean, .. } | InitScheme::TruncNormal { mean, .. }, "mean") => {
                mean
            }
            (InitScheme::Normal { std, .. } | InitScheme::TruncNormal { std, .. }, "std") => std,
            (
                InitScheme::XavierUniform { gain }
                | InitScheme::XavierNormal { gain }
                | InitScheme::Orthogonal { gain },
                "gain",
            ) => gain,
            (InitScheme::MaskedUniform { threshold, .. }, "threshold") => threshold,
            (
                InitScheme::KaimingUniform { mode, .. } | InitScheme::KaimingNormal { mode, .. },
                "mode",
            ) => {
                *mode = match value.trim().trim_matches(['\'', '"']) {
                    "fan_in" => FanMode::FanIn,
                    "fan_out" => FanMode::FanOut,
                    other => {
                        return Err(bad(format!(
                            "Mode {other} not supported, please use one of fan_in, fan_out"
                        )));
                    }
                };
                return Ok(());
            }
            (
                InitScheme::KaimingUniform { nonlinearity, .. }
                | InitScheme::KaimingNormal { nonlinearity, .. },
                "nonlinearity",
            ) => {
                let name = value.trim().trim_matches(['\'', '"']);
                calculate_gain(name, None).map_err(|e| bad(e.to_string()))?;
                name.clone_into(nonlinearity);
                return Ok(());
            }
            _ => {
                let accepted: Vec<_> = self.arguments().into_iter().map(|(k, _)| k).collect();
                return Err(InitError::UnknownArgument {
                    scheme,
                    key: key.to_owned(),
                    accepted: if accepted.is_empty() {
                        "no arguments".to_owned()
                    } else {
                        accepted.join(", ")
                    },
                });
            }
        };
        *slot = number()?;
        Ok(())
    }

    /// Checks the argument combination as PyTorch's kernels do before drawing anything.
    fn check(&self) -> Result<(), InitError> {
        let scheme = self.name();
        let bad = |key: &str, reason: String| {
            Err(InitError::BadValue {
                scheme,
                key: key.to_owned(),
                reason,
            })
        };
        match *self {
            InitScheme::Uniform { a, b } | InitScheme::MaskedUniform { a, b, .. } if a > b => bad(
                "b",
                format!(
                    "uniform_ expects to return a [from, to) range, but found from={a} > to={b}"
                ),
            ),
            InitScheme::Normal { std, .. } if std < 0.0 => bad(
                "std",
                format!("normal expects std >= 0.0, but found std {std}"),
            ),
            InitScheme::TruncNormal { std, .. } if std <= 0.0 => {
                bad("std", format!("trunc_normal needs std > 0, got {std}"))
            }
            InitScheme::TruncNormal { a, b, .. } if a >= b => {
                bad("b", format!("the cut-offs need a < b, got a={a}, b={b}"))
            }
            InitScheme::MaskedUniform { threshold, .. } if threshold < 0.0 => bad(
                "threshold",
                format!("a magnitude threshold cannot be negative, got {threshold}"),
            ),
            _ => Ok(()),
        }
    }
}

impl FromStr for InitScheme {
    type Err = InitError;

    /// Reads `NAME[:k=v,...]`; `nn.init.` and a trailing `_` are accepted (`nn.init.xavier_uniform_`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, args) = text.split_once(':').unwrap_or((text, ""));
        let name = name.trim();
        let name = name.strip_prefix("nn.init.").unwrap_or(name);
        let name = name.strip_suffix('_').unwrap_or(name);
        let mut scheme = InitScheme::with_defaults(name)?;
        // Parsed whole, then validated once: `uniform:b=3,a=2` and `uniform:a=2,b=3` are the same.
        let mut seen = std::collections::HashSet::new();
        for pair in args.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| InitError::BadValue {
                scheme: scheme.name(),
                key: pair.to_owned(),
                reason: "arguments are written key=value".to_owned(),
            })?;
            let key = key.trim();
            if !seen.insert(key) {
                return Err(InitError::BadValue {
                    scheme: scheme.name(),
                    key: key.to_owned(),
                    reason: "given twice".to_owned(),
                });
            }
            scheme.assign(key, value)?;
        }
        scheme.check()?;
        Ok(scheme)
    }
}

impl fmt::Display for InitScheme {
    /// The scheme as it is typed: `kaiming_normal:a=0.0,mode=fan_out,nonlinearity=relu`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        let args = self.arguments();
        for (i, (k, v)) in args.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { ':' } else { ',' })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::rng::TorchGenerator;

    #[test]
    fn schemes_parse_with_pytorch_argument_names() {
        let s: InitScheme = "kaiming_normal:mode=fan_out,nonlinearity=relu"
            .parse()
            .unwrap();
        assert_eq!(
            s,
            InitScheme::KaimingNormal {
                a: 0.0,
                mode: FanMode::FanOut,
                nonlinearity: "relu".into()
            }
        );
        assert_eq!(
            "nn.init.xavier_uniform_".parse(),
            Ok(InitScheme::XavierUniform { gain: 1.0 })
        );
        assert_eq!(
            s.to_string(),
            "kaiming_normal:a=0.0,mode=fan_out,nonlinearity=relu"
        );
        assert_eq!(s.to_string().parse(), Ok(s));
    }

    #[test]
    fn bad_schemes_are_errors_that_say_why() {
        let err = |t: &str| t.parse::<InitScheme>().unwrap_err().to_string();
        assert!(err("gaussian").contains("unknown init scheme \"gaussian\""));
        assert!(err("normal:sd=1").contains("takes no argument \"sd\"; it takes: mean, std"));
        assert!(err("normal:std=-1").contains("normal expects std >= 0.0"));
        assert!(err("uniform:a=2,b=1").contains("from=2 > to=1"));
        assert!(err("constant:val=abc").contains("\"abc\" is not a number"));
        assert!(err("kaiming_uniform:mode=fan_middle").contains("Mode fan_middle not supported"));
        assert!(err("kaiming_uniform:nonlinearity=swish").contains("unsupported nonlinearity"));
        assert!(err("zeros:val=1").contains("it takes: no arguments"));
        assert!(err("normal:std").contains("key=value"));
        assert!(err("normal:std=1,std=2").contains("std: given twice"));
        assert!(err("uniform:b=1,a=2").contains("from=2 > to=1"));
    }

    #[test]
    fn arguments_are_validated_together_in_any_order() {
        let a: InitScheme = "uniform:a=2,b=3".parse().unwrap();
        let b: InitScheme = "uniform:b=3,a=2".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a, InitScheme::Uniform { a: 2.0, b: 3.0 });
        let t: InitScheme = "trunc_normal:a=3,b=4,mean=3.5".parse().unwrap();
        assert_eq!(t.to_string().parse(), Ok(t));
    }

    #[test]
    fn gains_follow_calculate_gain() {
        assert_eq!(calculate_gain("tanh", None), Ok(5.0 / 3.0));
        assert_eq!(calculate_gain("relu", None), Ok(2f64.sqrt()));
        assert_eq!(
            calculate_gain("leaky_relu", None),
            Ok((2.0 / (1.0 + 0.0001f64)).sqrt())
        );
        assert_eq!(calculate_gain("selu", None), Ok(0.75));
        assert_eq!(calculate_gain("sigmoid", None), Ok(1.0));
    }

    #[test]
    fn fans_follow_pytorch() {
        assert_eq!(fans(&[8, 4]), Ok((4, 8)));
        assert_eq!(fans(&[16, 3, 5, 5]), Ok((75, 400)));
        assert!(fans(&[8]).is_err());
    }

    #[test]
    fn schemes_that_need_fans_refuse_a_bias() {
        let mut rng = TorchGenerator::new(0);
        let err = InitScheme::XavierUniform { gain: 1.0 }
            .sample(&[8], Role::Weight, &mut rng)
            .unwrap_err();
        assert!(err.to_string().contains("fewer than 2 dimensions"));
        let err = InitScheme::Orthogonal { gain: 1.0 }
            .sample(&[8], Role::Weight, &mut rng)
            .unwrap_err();
        assert!(err.to_string().contains("2 or more dimensions"));
    }
}
