//! The kernel's quantized products against dequantize-then-multiply: for each ggml type it keeps
//! quantized (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K to Q6_K), random blocks dequantized by the tensor
//! layer (bit for bit gguf-py's values, tests/gguf.rs) and multiplied in f64 give the reference;
//! the kernel's result must match it to f32 rounding of the sums, for one row and for several.

use paramscope::kernel::quant::{self, Fused, QuantMatrix};
use paramscope::tensor::ggml::Quant;

/// A small xorshift: the blocks need variety, not quality.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// Where each type keeps its f16 scales: random bytes there could be Inf or NaN.
fn scale_offsets(q: Quant) -> &'static [usize] {
    match q {
        Quant::Q4_0 | Quant::Q5_0 | Quant::Q8_0 => &[0],
        Quant::Q4_1 | Quant::Q5_1 | Quant::Q4_K | Quant::Q5_K => &[0, 2],
        Quant::Q2_K => &[80, 82],
        Quant::Q3_K => &[108],
        Quant::Q6_K => &[208],
        _ => unreachable!(),
    }
}

fn fused(q: Quant) -> Option<Fused> {
    match q {
        Quant::Q4_0 => Some(Fused::Q4_0),
        Quant::Q4_1 => Some(Fused::Q4_1),
        Quant::Q8_0 => Some(Fused::Q8_0),
        Quant::Q4_K => Some(Fused::Q4_K),
        Quant::Q6_K => Some(Fused::Q6_K),
        _ => None,
    }
}

#[test]
fn quantized_products_match_dequantize_then_multiply() {
    let types = [
        Quant::Q4_0,
        Quant::Q4_1,
        Quant::Q5_0,
        Quant::Q5_1,
        Quant::Q8_0,
        Quant::Q2_K,
        Quant::Q3_K,
        Quant::Q4_K,
        Quant::Q5_K,
        Quant::Q6_K,
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // 37 outputs: one panel, an odd width; 300 × 2048: several panels of decoded rows per thread
    // (128 rows each); rows of an odd count of 32-value blocks (96 values: a pair and one more), and
    // of 17 K-blocks (4352 values: a batch of 16 blocks and one more), for the single-row dots'
    // tails.
    for ((n, k), q) in [(37, 512), (300, 2048), (5, 96), (3, 4352_usize)]
        .into_iter()
        .flat_map(|shape| types.map(|q| (shape, q)))
        .filter(|&((_, k), q)| k.is_multiple_of(q.block_size()))
    {
        let (bytes, w) = random_weight(q, n, k, &mut rng);
        assert_eq!(w.len(), n * k);
        let decode = |b: &[u8], out: &mut Vec<f32>| q.dequantize_range(b, 0, usize::MAX, out);
        for with_fused in [false, true] {
            if with_fused && fused(q).is_none() {
                continue;
            }
            let matrix = QuantMatrix {
                bytes: &bytes,
                out_features: n,
                in_features: k,
                block_values: q.block_size(),
                fused: if with_fused { fused(q) } else { None },
                decode: &decode,
            };
            for rows in [1, 3, 40] {
                let x: Vec<f32> = (0..rows * k).map(|_| rng.unit()).collect();
                let bias: Vec<f32> = (0..n).map(|_| rng.unit()).collect();
                let mut y = vec![f32::NAN; rows * n];
                quant::linear(&x, rows, &matrix, &mut y, Some(&bias));
                for r in 0..rows {
                    for o in 0..n {
                        let terms =
                            (0..k).map(|i| f64::from(w[o * k + i]) * f64::from(x[r * k + i]));
                        let (want, size) = terms.fold(
                            (f64::from(bias[o]), f64::from(bias[o].abs())),
                            |(s, a), t| (s + t, a + t.abs()),
                        );
                        let got = f64::from(y[r * n + o]);
                        // f32 sums of k terms: a few ulps of the magnitude of what is summed.
                        assert!(
                            (got - want).abs()
                                <= 4.0 * f64::from(f32::EPSILON) * (k as f64).sqrt() * size + 1e-30,
                            "{q} fused {with_fused} rows {rows}: y[{r}, {o}] = {got}, dequantize-then-multiply {want}"
                        );
                    }
                }
            }
        }
    }
}

/// Random blocks with finite scales, `n` rows of `k` values, and their values as the tensor layer
/// decodes them.
fn random_weight(q: Quant, n: usize, k: usize, rng: &mut Rng) -> (Vec<u8>, Vec<f32>) {
    let blocks = n * k / q.block_size();
    let mut bytes: Vec<u8> = (0..blocks * q.type_size())
        .map(|_| rng.next() as u8)
        .collect();
    for block in bytes.chunks_exact_mut(q.type_size()) {
        for &at in scale_offsets(q) {
            let scale = half::f16::from_f32(rng.unit() * 0.05);
            block[at..at + 2].copy_from_slice(&scale.to_le_bytes());
        }
    }
    let mut w = Vec::new();
    q.dequantize_range(&bytes, 0, n * k, &mut w);
    (bytes, w)
}

#[test]
fn the_kernels_decoded_values_are_the_tensor_layers_bit_for_bit() {
    // x = the identity makes y = w exactly (one product by 1, the rest by 0, all values finite),
    // on the path that decodes panels of rows; a one-hot x reads a column through the row dots.
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let (n, k) = (37, 256);
    for q in [
        Quant::Q4_0,
        Quant::Q4_1,
        Quant::Q8_0,
        Quant::Q4_K,
        Quant::Q6_K,
    ] {
        let (bytes, w) = random_weight(q, n, k, &mut rng);
        let decode = |b: &[u8], out: &mut Vec<f32>| q.dequantize_range(b, 0, usize::MAX, out);
        let matrix = QuantMatrix {
            bytes: &bytes,
            out_features: n,
            in_features: k,
            block_values: q.block_size(),
            fused: fused(q),
            decode: &decode,
        };
        let identity: Vec<f32> = (0..k * k)
            .map(|i| if i / k == i % k { 1.0 } else { 0.0 })
            .collect();
        let mut y = vec![f32::NAN; k * n];
        quant::linear(&identity, k, &matrix, &mut y, None);
        for r in 0..k {
            for o in 0..n {
                assert_eq!(y[r * n + o], w[o * k + r], "{q} panel: w[{o}, {r}]");
            }
        }
        for j in [0, 1, 31, 32, 100, k - 1] {
            let mut x = vec![0f32; k];
            x[j] = 1.0;
            let mut y = vec![f32::NAN; n];
            quant::linear(&x, 1, &matrix, &mut y, None);
            for o in 0..n {
                assert_eq!(y[o], w[o * k + j], "{q} row dot: w[{o}, {j}]");
            }
        }
    }
}

/// Weights stacked without their rows being copied together (a layer's query, key and value)
/// give what the rows copied into one matrix give, bit for bit: each output's sum runs in the
/// same order whichever part, tile or thread its row falls in. Part sizes straddle tiles (12
/// rows) and thread parts (16 columns).
#[test]
fn stacked_parts_equal_their_rows_copied_together() {
    let mut rng = Rng(0x5eed_0f57_ac4e_d0d0);
    let k = 512;
    for q in [Quant::Q4_1, Quant::Q5_0, Quant::Q4_K] {
        let sizes = [37, 19, 64];
        let parts: Vec<(Vec<u8>, usize)> = sizes
            .iter()
            .map(|&n| (random_weight(q, n, k, &mut rng).0, n))
            .collect();
        let whole: Vec<u8> = parts.iter().flat_map(|(b, _)| b.iter().copied()).collect();
        let n: usize = sizes.iter().sum();
        let decode = |b: &[u8], out: &mut Vec<f32>| q.dequantize_range(b, 0, usize::MAX, out);
        let matrix = |bytes, out_features| QuantMatrix {
            bytes,
            out_features,
            in_features: k,
            block_values: q.block_size(),
            fused: fused(q),
            decode: &decode,
        };
        let stacked: Vec<QuantMatrix<'_>> = parts.iter().map(|(b, n)| matrix(b, *n)).collect();
        for rows in [1, 3, 40] {
            let x: Vec<f32> = (0..rows * k).map(|_| rng.unit()).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.unit()).collect();
            let mut want = vec![f32::NAN; rows * n];
            quant::linear(&x, rows, &matrix(&whole, n), &mut want, Some(&bias));
            let mut got = vec![f32::NAN; rows * n];
            quant::linear_stacked(&x, rows, &stacked, &mut got, Some(&bias));
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{q}, {rows} rows"
            );
        }
    }
}
