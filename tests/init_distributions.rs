//! Each init scheme draws from the distribution its formula names: Kolmogorov–Smirnov statistics,
//! bounds and moments on 32,768 draws, at tolerances a wrong formula cannot meet by chance.

use paramscope::math::erf;
use paramscope::model::init::{InitScheme, Role};
use paramscope::model::rng::TorchGenerator;

const SHAPE: [usize; 2] = [256, 128]; // fan_in 128, fan_out 256
const N: usize = 256 * 128;

/// KS at significance 1e-6 for n = 32768 is √(ln(2/1e-6)/(2n)) ≈ 0.0149.
const KS_LIMIT: f64 = 0.015;

fn draw(scheme: &str, seed: u64) -> Vec<f32> {
    let scheme: InitScheme = scheme.parse().unwrap();
    scheme
        .sample(&SHAPE, Role::Weight, &mut TorchGenerator::new(seed))
        .unwrap()
}

fn ks(values: &[f32], cdf: impl Fn(f64) -> f64) -> f64 {
    let mut sorted: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    sorted
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / n).abs().max((f - (i + 1) as f64 / n).abs())
        })
        .fold(0.0, f64::max)
}

fn normal_cdf(mean: f64, std: f64) -> impl Fn(f64) -> f64 {
    move |x| 0.5 * (1.0 + erf((x - mean) / (std * 2f64.sqrt())))
}

fn uniform_cdf(a: f64, b: f64) -> impl Fn(f64) -> f64 {
    move |x| ((x - a) / (b - a)).clamp(0.0, 1.0)
}

fn assert_ks(scheme: &str, cdf: impl Fn(f64) -> f64) {
    let d = ks(&draw(scheme, 1), cdf);
    assert!(d < KS_LIMIT, "{scheme}: KS statistic {d}");
}

#[test]
fn uniform_family_bounds_follow_the_formulas() {
    let (fan_in, fan_out) = (128.0f64, 256.0f64);
    let xavier = 2.0 * (6.0 / (fan_in + fan_out)).sqrt();
    assert_ks("xavier_uniform:gain=2", uniform_cdf(-xavier, xavier));
    let kaiming = 2f64.sqrt() * (3.0 / fan_in).sqrt();
    assert_ks(
        "kaiming_uniform:nonlinearity=relu",
        uniform_cdf(-kaiming, kaiming),
    );
    let fan_out_bound = (2.0 / (1.0 + 0.04f64)).sqrt() * (3.0 / fan_out).sqrt();
    assert_ks(
        "kaiming_uniform:a=0.2,mode=fan_out",
        uniform_cdf(-fan_out_bound, fan_out_bound),
    );
    let default = 1.0 / fan_in.sqrt();
    assert_ks("default", uniform_cdf(-default, default));
    assert_ks("uniform:a=-3,b=5", uniform_cdf(-3.0, 5.0));
    // A bound 5% too wide is caught.
    assert!(
        ks(
            &draw("default", 1),
            uniform_cdf(-1.05 * default, 1.05 * default)
        ) > KS_LIMIT
    );
}

#[test]
fn normal_family_spreads_follow_the_formulas() {
    let (fan_in, fan_out) = (128.0f64, 256.0f64);
    assert_ks("normal:mean=1,std=0.5", normal_cdf(1.0, 0.5));
    assert_ks(
        "xavier_normal:gain=3",
        normal_cdf(0.0, 3.0 * (2.0 / (fan_in + fan_out)).sqrt()),
    );
    assert_ks(
        "kaiming_normal:mode=fan_out,nonlinearity=relu",
        normal_cdf(0.0, 2f64.sqrt() / fan_out.sqrt()),
    );
    assert_ks(
        "kaiming_normal:nonlinearity=tanh",
        normal_cdf(0.0, 5.0 / 3.0 / fan_in.sqrt()),
    );
    // A standard deviation 10% off is caught.
    assert!(ks(&draw("normal:mean=1,std=0.5", 1), normal_cdf(1.0, 0.55)) > KS_LIMIT);
}

#[test]
fn trunc_normal_stays_inside_and_has_the_truncated_shape() {
    for (scheme, mean, std, a, b) in [
        ("trunc_normal:std=0.02", 0.0, 0.02, -2.0, 2.0),
        ("trunc_normal:mean=0,std=1,a=-1,b=0.5", 0.0, 1.0, -1.0, 0.5),
        ("trunc_normal:mean=0,std=1,a=1,b=3", 0.0, 1.0, 1.0, 3.0),
    ] {
        let values = draw(scheme, 2);
        assert!(
            values
                .iter()
                .all(|v| f64::from(*v) >= a && f64::from(*v) <= b),
            "{scheme}"
        );
        let base = normal_cdf(mean, std);
        let (low, high) = (base(a), base(b));
        let d = ks(&values, |x| {
            ((base(x.clamp(a, b)) - low) / (high - low)).clamp(0.0, 1.0)
        });
        assert!(d < KS_LIMIT, "{scheme}: KS {d}");
    }
}

#[test]
fn orthogonal_rows_are_orthonormal_times_gain() {
    for shape in [[16usize, 64], [64, 16]] {
        let scheme: InitScheme = "orthogonal:gain=2".parse().unwrap();
        let w = scheme
            .sample(&shape, Role::Weight, &mut TorchGenerator::new(3))
            .unwrap();
        let (rows, cols) = (shape[0], shape[1]);
        // The smaller side's vectors are orthonormal (scaled by gain²): rows when wide, columns when tall.
        let wide = rows <= cols;
        let (count, len) = if wide { (rows, cols) } else { (cols, rows) };
        let at = |v: usize, k: usize| {
            f64::from(if wide {
                w[v * cols + k]
            } else {
                w[k * cols + v]
            })
        };
        for i in 0..count {
            for j in 0..count {
                let dot: f64 = (0..len).map(|k| at(i, k) * at(j, k)).sum();
                let want = if i == j { 4.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-5, "{shape:?}: <{i},{j}> = {dot}");
            }
        }
    }
}

#[test]
fn masked_uniform_zeroes_the_small_magnitudes() {
    let values = draw("masked_uniform", 4);
    let zeros = values.iter().filter(|v| **v == 0.0).count() as f64 / N as f64;
    // U(-10, 10) with |w| < 5 zeroed: half the mass. 6σ of a binomial proportion is 0.017.
    assert!((zeros - 0.5).abs() < 0.017, "zero fraction {zeros}");
    assert!(
        values
            .iter()
            .all(|v| *v == 0.0 || (5.0..=10.0).contains(&v.abs()))
    );
    let kept: Vec<f32> = values
        .iter()
        .copied()
        .filter(|v| *v != 0.0)
        .map(f32::abs)
        .collect();
    assert!(ks(&kept, uniform_cdf(5.0, 10.0)) < 0.02);
}

#[test]
fn constants_are_constant() {
    assert!(draw("constant:val=0.25", 0).iter().all(|v| *v == 0.25));
    assert!(draw("ones", 0).iter().all(|v| *v == 1.0));
    assert!(draw("zeros", 0).iter().all(|v| *v == 0.0));
}

#[test]
fn the_same_seed_gives_the_same_draw_and_another_seed_does_not() {
    for scheme in [
        "normal",
        "xavier_uniform",
        "kaiming_normal",
        "trunc_normal",
        "orthogonal",
        "masked_uniform",
    ] {
        assert_eq!(draw(scheme, 9), draw(scheme, 9), "{scheme}");
        assert_ne!(draw(scheme, 9), draw(scheme, 10), "{scheme}");
    }
}
