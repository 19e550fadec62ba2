//! Two adapters' updates compared module by module, through low-rank identities: with
//! `dW = s·B·A`, `‖dW₁ − dW₂‖_F` is the norm of the rank-(r₁ + r₂) product `[s₁B₁, −s₂B₂]·[A₁; A₂]`,
//! taken from its small core (the QR factors' R of each side, as `adapter::figures` takes one
//! update's), and `⟨dW₁, dW₂⟩_F = tr((s₁B₁)ᵀ(s₂B₂) · (A₁A₂ᵀ)ᵀ)`, a sum over an r₁ × r₂ product, so no
//! out × in matrix is formed. A DoRA module's update is not low-rank (its magnitude rescales each
//! row of the merged weight): it is formed as PEFT merges it, less the base weight.

use faer::Mat;

use super::adapter::{Lora, LoraError, merge, values};
use super::diff::Status;
use crate::model::Model;

/// Two adapters' updates of one base module, compared.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateDiff {
    /// The module's path.
    pub module: String,
    /// `Same` (the same factors and scaling), `Changed`, `OnlyA`, `OnlyB`, or `Shape` (the
    /// updates' shapes or layouts differ).
    pub status: Status,
    /// The figures, for a module both adapt with updates of one shape.
    pub figures: Option<UpdateFigures>,
}

/// What differs between two updates of one module.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateFigures {
    /// Each side's rank.
    pub r: (usize, usize),
    /// ‖dW_A‖_F.
    pub norm_a: f64,
    /// ‖dW_B‖_F.
    pub norm_b: f64,
    /// ‖dW_A − dW_B‖_F.
    pub diff_norm: f64,
    /// ⟨dW_A, dW_B⟩ / (‖dW_A‖ ‖dW_B‖); NaN when either is zero.
    pub cosine: f64,
    /// The updates were formed whole (a DoRA module), not compared through their factors.
    pub formed: bool,
}

impl UpdateFigures {
    /// ‖dW_A − dW_B‖ / ‖dW_A‖: NaN when A's update is zero.
    #[must_use]
    pub fn rel_diff(&self) -> f64 {
        self.diff_norm / self.norm_a
    }
}

/// The updates of adapters `a` and `b` (each with the base model its modules' ids point into)
/// compared module by module: A's modules in A's order, then those only B adapts.
pub fn diff_updates(
    (a, base_a): (&[Lora], &Model),
    (b, base_b): (&[Lora], &Model),
) -> Result<Vec<UpdateDiff>, LoraError> {
    let mut out = Vec::with_capacity(a.len());
    for la in a {
        let Some(lb) = b.iter().find(|l| l.module == la.module) else {
            out.push(only(la, Status::OnlyA));
            continue;
        };
        let (status, figures) = if !same_layout(la, lb) {
            (Status::Shape, None)
        } else if same_factors(la, lb) {
            // Equal by their bytes: the difference is zero, not the rounding of its core.
            let figures = compare(la, base_a, lb, base_b)?;
            let diff_norm = 0.0;
            (
                Status::Same,
                Some(UpdateFigures {
                    diff_norm,
                    ..figures
                }),
            )
        } else {
            (Status::Changed, Some(compare(la, base_a, lb, base_b)?))
        };
        out.push(UpdateDiff {
            module: la.module.clone(),
            status,
            figures,
        });
    }
    for lb in b
        .iter()
        .filter(|lb| !a.iter().any(|la| la.module == lb.module))
    {
        out.push(only(lb, Status::OnlyB));
    }
    Ok(out)
}

/// A module only one side adapts.
fn only(lora: &Lora, status: Status) -> UpdateDiff {
    UpdateDiff {
        module: lora.module.clone(),
        status,
        figures: None,
    }
}

/// Whether both updates have one shape and one layout (dW, or dW transposed).
fn same_layout(a: &Lora, b: &Lora) -> bool {
    a.transposed == b.transposed
        && a.b.shape().first() == b.b.shape().first()
        && a.a.shape().get(1) == b.a.shape().get(1)
}

/// Whether both sides store the same factors (bytes and dtypes) with the same scaling.
fn same_factors(a: &Lora, b: &Lora) -> bool {
    let same = |x: &crate::tensor::Tensor, y: &crate::tensor::Tensor| {
        x.dtype() == y.dtype() && x.shape() == y.shape() && x.bytes() == y.bytes()
    };
    let magnitudes = match (&a.magnitude, &b.magnitude) {
        (None, None) => true,
        (Some(x), Some(y)) => same(x, y),
        _ => false,
    };
    a.scaling.to_bits() == b.scaling.to_bits() && same(&a.a, &b.a) && same(&a.b, &b.b) && magnitudes
}

/// The figures of two updates of one shape: through their factors, or formed for DoRA.
fn compare(a: &Lora, base_a: &Model, b: &Lora, base_b: &Model) -> Result<UpdateFigures, LoraError> {
    if a.magnitude.is_some() || b.magnitude.is_some() {
        return formed(a, base_a, b, base_b);
    }
    let (ba, at_a) = factors(a)?;
    let (bb, at_b) = factors(b)?;
    let (ra, rb) = (ba.ncols(), bb.ncols());
    // [s_A B_A, −s_B B_B] and [A_Aᵀ, A_Bᵀ]: their product is dW_A − dW_B.
    let stacked_b = Mat::<f64>::from_fn(ba.nrows(), ra + rb, |i, k| {
        if k < ra { ba[(i, k)] } else { -bb[(i, k - ra)] }
    });
    let stacked_a = Mat::<f64>::from_fn(at_a.nrows(), ra + rb, |j, k| {
        if k < ra {
            at_a[(j, k)]
        } else {
            at_b[(j, k - ra)]
        }
    });
    let gram_b = ba.transpose() * &bb;
    let gram_a = at_a.transpose() * &at_b;
    let inner: f64 = (0..ra)
        .flat_map(|i| (0..rb).map(move |j| (i, j)))
        .map(|(i, j)| gram_b[(i, j)] * gram_a[(i, j)])
        .sum();
    let (norm_a, norm_b) = (product_norm(&ba, &at_a), product_norm(&bb, &at_b));
    Ok(UpdateFigures {
        r: (a.r, b.r),
        norm_a,
        norm_b,
        diff_norm: product_norm(&stacked_b, &stacked_a),
        cosine: inner / (norm_a * norm_b),
        formed: false,
    })
}

/// `s·B` (out × r) and `Aᵀ` (in × r) in f64.
fn factors(lora: &Lora) -> Result<(Mat<f64>, Mat<f64>), LoraError> {
    let (a, b) = (
        values(&lora.a, lora, "lora_A")?,
        values(&lora.b, lora, "lora_B")?,
    );
    let (out, r, inputs) = (lora.b.shape()[0], lora.b.shape()[1], lora.a.shape()[1]);
    let b = Mat::<f64>::from_fn(out, r, |i, k| lora.scaling * f64::from(b[i * r + k]));
    let a_t = Mat::<f64>::from_fn(inputs, r, |j, k| f64::from(a[k * inputs + j]));
    Ok((b, a_t))
}

/// ‖B·Aᵀᵀ‖_F from the thin QR factors of B and of `a_t`: `B·A = Q_B (R_B R_Aᵀ) Q_Aᵀ`, and the
/// orthonormal Q's keep the norm, so it is the small core's.
fn product_norm(b: &Mat<f64>, a_t: &Mat<f64>) -> f64 {
    let core = b.qr().thin_R() * a_t.qr().thin_R().transpose();
    core.norm_l2()
}

/// The figures of two updates formed whole: each side's merged weight less its base weight.
fn formed(a: &Lora, base_a: &Model, b: &Lora, base_b: &Model) -> Result<UpdateFigures, LoraError> {
    let update = |lora: &Lora, model: &Model| -> Result<Vec<f64>, LoraError> {
        let base = model.store.get(lora.id);
        let merged = values(&merge(lora, base)?, lora, "merged")?;
        let w = values(base, lora, "base")?;
        Ok(merged
            .iter()
            .zip(&w)
            .map(|(m, w)| f64::from(*m) - f64::from(*w))
            .collect())
    };
    let (da, db) = (update(a, base_a)?, update(b, base_b)?);
    let norm = |d: &[f64]| d.iter().map(|v| v * v).sum::<f64>().sqrt();
    let (norm_a, norm_b) = (norm(&da), norm(&db));
    let diff: Vec<f64> = da.iter().zip(&db).map(|(x, y)| x - y).collect();
    let inner: f64 = da.iter().zip(&db).map(|(x, y)| x * y).sum();
    Ok(UpdateFigures {
        r: (a.r, b.r),
        norm_a,
        norm_b,
        diff_norm: norm(&diff),
        cosine: inner / (norm_a * norm_b),
        formed: true,
    })
}
