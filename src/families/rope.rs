//! Rotary position embeddings in Hugging Face's half-split layout: the first half of each head's
//! dimensions pairs with the second half (`rotate_half`), not neighbouring dimensions.

use std::f64::consts::PI;
use std::ops::Range;

use super::config::{ConfigError, RopeScaling};

/// The inverse frequencies of one head, after the config's scaling, and the positions they were
/// scaled for.
#[derive(Debug, Clone)]
pub struct Rope {
    /// `head_dim / 2` inverse frequencies.
    inv_freq: Vec<f64>,
    /// `theta`, kept for `dynamic` scaling, which recomputes the frequencies for long inputs.
    theta: f64,
    scaling: Scaling,
    head_dim: usize,
}

#[derive(Debug, Clone)]
enum Scaling {
    None,
    /// Phi-3's longrope: per-frequency divisors, `long` once the positions pass `original`, and
    /// cos and sin multiplied by `attention`.
    Long {
        long: Vec<f64>,
        original: usize,
        attention: f32,
    },
    /// NTK-aware: past `max_positions`, the base grows with the input's length.
    Dynamic {
        factor: f64,
        max_positions: f64,
    },
}

impl Rope {
    /// The frequencies for heads of `head_dim` with base `theta` and the config's scaling.
    pub fn new(
        head_dim: usize,
        theta: f64,
        scaling: &RopeScaling,
        max_positions: usize,
    ) -> Result<Self, ConfigError> {
        if !head_dim.is_multiple_of(2) {
            return Err(ConfigError::Field {
                field: "head_dim",
                why: format!("{head_dim} is odd; RoPE pairs the dimensions"),
            });
        }
        let factor = || {
            scaling
                .factor
                .filter(|f| f.is_finite() && *f > 0.0)
                .ok_or(ConfigError::Field {
                    field: "rope_scaling",
                    why: "needs a positive factor".into(),
                })
        };
        let mut inv_freq = frequencies(head_dim, theta);
        let kind = match scaling.rope_type.as_deref().unwrap_or("default") {
            "default" => Scaling::None,
            "linear" => {
                // As transformers: the frequencies divided, which is the positions divided.
                let factor = factor()?;
                for f in &mut inv_freq {
                    *f /= factor;
                }
                Scaling::None
            }
            "dynamic" => Scaling::Dynamic {
                factor: factor()?,
                max_positions: max_positions as f64,
            },
            "llama3" => {
                llama3(&mut inv_freq, factor()?, scaling)?;
                Scaling::None
            }
            "longrope" | "su" => {
                let (long, original, attention) = longrope(&mut inv_freq, scaling, max_positions)?;
                Scaling::Long {
                    long,
                    original,
                    attention,
                }
            }
            other => {
                return Err(ConfigError::Field {
                    field: "rope_scaling",
                    why: format!(
                        "type {other:?} is not supported (default, linear, dynamic, llama3, longrope are)"
                    ),
                });
            }
        };
        Ok(Self {
            inv_freq,
            theta,
            scaling: kind,
            head_dim,
        })
    }

    /// The cos and sin tables for positions `0..len`, each `len × head_dim` (the half repeated, as
    /// transformers' `cat((freqs, freqs))`).
    #[must_use]
    pub fn tables(&self, len: usize) -> (Vec<f32>, Vec<f32>) {
        self.tables_at(0, len)
    }

    /// The tables for positions `start..start + len`: the tokens a cached step adds after
    /// `start` earlier ones. Scalings that depend on the length see `start + len`, as
    /// transformers' do (its largest position id plus one), so a step rotates as its own does.
    #[must_use]
    pub fn tables_at(&self, start: usize, len: usize) -> (Vec<f32>, Vec<f32>) {
        let seen = start + len;
        let mut gain = 1.0;
        let inv_freq = match &self.scaling {
            Scaling::Dynamic {
                factor,
                max_positions,
            } if seen as f64 > *max_positions => {
                let d = self.head_dim as f64;
                let base = self.theta
                    * (factor * seen as f64 / max_positions - (factor - 1.0)).powf(d / (d - 2.0));
                frequencies(self.head_dim, base)
            }
            Scaling::Long {
                long,
                original,
                attention,
            } => {
                gain = *attention;
                if seen > *original {
                    long.clone()
                } else {
                    self.inv_freq.clone()
                }
            }
            Scaling::None | Scaling::Dynamic { .. } => self.inv_freq.clone(),
        };
        let half = self.head_dim / 2;
        let mut cos = vec![0.0; len * self.head_dim];
        let mut sin = vec![0.0; len * self.head_dim];
        for r in 0..len {
            let p = start + r;
            for (i, f) in inv_freq.iter().enumerate() {
                // transformers multiplies in f32; the angle is rounded to f32 the same way here.
                let angle = f64::from(p as f32 * *f as f32);
                let (s, c) = angle.sin_cos();
                for at in [r * self.head_dim + i, r * self.head_dim + half + i] {
                    cos[at] = c as f32 * gain;
                    sin[at] = s as f32 * gain;
                }
            }
        }
        (cos, sin)
    }
}

/// `1 / theta^(2i/d)` for `i` in `0..d/2`.
fn frequencies(head_dim: usize, theta: f64) -> Vec<f64> {
    (0..head_dim / 2)
        .map(|i| {
            let exponent = (2 * i) as f64 / head_dim as f64;
            f64::from(1.0 / theta.powf(exponent) as f32)
        })
        .collect()
}

/// Llama 3's scaling: long wavelengths divided by the factor, short ones kept, a smooth blend between.
fn llama3(inv_freq: &mut [f64], factor: f64, s: &RopeScaling) -> Result<(), ConfigError> {
    let missing = |what: &str| ConfigError::Field {
        field: "rope_scaling",
        why: format!("llama3 needs {what}"),
    };
    let low = s
        .low_freq_factor
        .ok_or_else(|| missing("low_freq_factor"))?;
    let high = s
        .high_freq_factor
        .ok_or_else(|| missing("high_freq_factor"))?;
    let context = s
        .original_max_position_embeddings
        .ok_or_else(|| missing("original_max_position_embeddings"))?;
    if high <= low {
        return Err(missing("high_freq_factor above low_freq_factor"));
    }
    let low_wavelen = context / low;
    let high_wavelen = context / high;
    for f in inv_freq {
        let wavelen = 2.0 * PI / *f;
        if wavelen > low_wavelen {
            *f /= factor;
        } else if wavelen >= high_wavelen {
            let smooth = (context / wavelen - low) / (high - low);
            *f = (1.0 - smooth) * *f / factor + smooth * *f;
        }
    }
    Ok(())
}

/// Phi-3's longrope: `inv_freq` divided by the short factors in place; gives the frequencies
/// divided by the long ones, the original context and the attention factor.
fn longrope(
    inv_freq: &mut [f64],
    s: &RopeScaling,
    max_positions: usize,
) -> Result<(Vec<f64>, usize, f32), ConfigError> {
    let field = |why: String| ConfigError::Field {
        field: "rope_scaling",
        why,
    };
    let factors = |name: &str, list: Option<&Vec<f64>>| match list {
        Some(list) if list.len() == inv_freq.len() && list.iter().all(|f| *f > 0.0) => {
            Ok(list.clone())
        }
        _ => Err(field(format!(
            "longrope needs {name} with {} positive values",
            inv_freq.len()
        ))),
    };
    let short = factors("short_factor", s.short_factor.as_ref())?;
    let long = factors("long_factor", s.long_factor.as_ref())?;
    let original = s
        .original_max_position_embeddings
        .filter(|o| *o >= 1.0)
        .ok_or_else(|| field("longrope needs original_max_position_embeddings".into()))?;
    let factor = s.factor.unwrap_or(max_positions as f64 / original);
    let attention = s.attention_factor.unwrap_or(if factor <= 1.0 {
        1.0
    } else {
        (1.0 + factor.ln() / original.ln()).sqrt()
    });
    // As transformers: 1 / (factor · base^(2i/d)), in f32.
    let divide = |by: &[f64]| -> Vec<f64> {
        inv_freq
            .iter()
            .zip(by)
            .map(|(f, d)| f64::from((*f as f32) / (*d as f32)))
            .collect()
    };
    let long = divide(&long);
    let short = divide(&short);
    inv_freq.copy_from_slice(&short);
    Ok((long, original as usize, attention as f32))
}

/// Rotates the heads in columns `cols` of each row of `x` (rows of `width` values, row `r` at
/// position `r % len`) in place: `x·cos + rotate_half(x)·sin`. The columns select the queries or
/// the keys of a fused `[q | k | v]` projection.
pub fn apply(
    x: &mut [f32],
    width: usize,
    cols: Range<usize>,
    head_dim: usize,
    len: usize,
    cos: &[f32],
    sin: &[f32],
) {
    let half = head_dim / 2;
    for (r, row) in x.chunks_exact_mut(width).enumerate() {
        let p = r % len;
        let (cos, sin) = (
            &cos[p * head_dim..][..head_dim],
            &sin[p * head_dim..][..head_dim],
        );
        for head in row[cols.clone()].chunks_exact_mut(head_dim) {
            let (a, b) = head.split_at_mut(half);
            for i in 0..half {
                let (x1, x2) = (a[i], b[i]);
                a[i] = x1 * cos[i] - x2 * sin[i];
                b[i] = x2 * cos[half + i] + x1 * sin[half + i];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_zero_is_the_identity_and_llama3_divides_long_wavelengths() {
        let rope = Rope::new(4, 10_000.0, &RopeScaling::default(), 128).unwrap();
        let (cos, sin) = rope.tables(2);
        let mut x = vec![1.0, 2.0, 3.0, 4.0, 1.0, 0.0, 0.0, 0.0];
        apply(&mut x, 4, 0..4, 4, 2, &cos, &sin);
        assert_eq!(&x[..4], &[1.0, 2.0, 3.0, 4.0]);
        // Position 1, first pair: (cos 1, sin 1) rotation of (1, 0).
        assert!((x[4] - 1f32.cos()).abs() < 1e-7 && (x[6] - 1f32.sin()).abs() < 1e-7);
        let scaling = RopeScaling {
            rope_type: Some("llama3".into()),
            factor: Some(8.0),
            low_freq_factor: Some(0.5),
            high_freq_factor: Some(1.0),
            original_max_position_embeddings: Some(8.0),
            ..RopeScaling::default()
        };
        let scaled = Rope::new(4, 10_000.0, &scaling, 128).unwrap();
        // Wavelength 2π (first) is under 8/1: kept; 2π·100 (second) is over 8/0.5: divided by 8.
        assert_eq!(scaled.inv_freq[0], rope.inv_freq[0]);
        assert_eq!(scaled.inv_freq[1], rope.inv_freq[1] / 8.0);
    }
}
