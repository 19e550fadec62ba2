//! The down projections a decoder's MLPs show a probe as they run them ([`DownRun`], through a
//! [`Seen`]), and each layer's peaks over text 0 kept from them: where the super weights are.

use super::Probe;

/// The tensor a down projection multiplies by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownWeight {
    /// Its state_dict name (`model.layers.3.mlp.down_proj.weight`).
    pub name: String,
    /// The expert's index in it, when it is transformers 5's stacked `experts.down_proj`
    /// `[count, hidden, inner]`.
    pub expert: Option<usize>,
}

/// One down projection as a block ran it, shown to a probe.
#[derive(Debug, Clone, Copy)]
pub struct DownRun<'a> {
    /// Its weight.
    pub weight: &'a DownWeight,
    /// The block's input rows it ran on, in order (an expert's tokens); `None` for all of them.
    pub rows: Option<&'a [usize]>,
    /// Its input, `rows × inner`.
    pub input: &'a [f32],
    /// Its output, `rows × hidden`.
    pub output: &'a [f32],
}

/// What sees each down projection a block runs, when a probe asks.
pub type Seen<'a, 'b> = Option<&'a mut (dyn FnMut(DownRun<'_>) + 'b)>;

/// The largest `|output|` of one layer's down projections over text 0 (of all its experts', in a
/// mixture), with the largest `|input|` of the same projection, and their coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct DownPeak {
    /// The decoder layer.
    pub layer: usize,
    /// The projection's weight.
    pub weight: DownWeight,
    /// The largest `|output|`.
    pub output: f32,
    /// Its token position and channel (the weight's row).
    pub output_at: (usize, usize),
    /// The largest `|input|`.
    pub input: f32,
    /// Its token position and channel (the weight's column).
    pub input_at: (usize, usize),
}

impl Probe {
    /// Keeps the peaks of one down projection of layer `layer` over text 0, unless one of that
    /// layer's has a larger output (the first of equal peaks is kept, as torch's argmax keeps).
    pub(crate) fn down_proj(&mut self, layer: usize, run: DownRun) {
        let first = self.first_len();
        // Text 0's rows are the block's first `first`; an expert's rows are the tokens routed to it.
        let position = |i: usize| match run.rows {
            None => Some(i).filter(|&i| i < first),
            Some(rows) => rows.get(i).copied().filter(|&r| r < first),
        };
        let count = run.rows.map_or(self.lens.len() * self.len, <[usize]>::len);
        let peak = |values: &[f32]| {
            let width = (values.len() / count.max(1)).max(1);
            values
                .chunks_exact(width)
                .enumerate()
                .filter_map(|(i, row)| Some((position(i)?, row)))
                .flat_map(|(token, row)| {
                    row.iter()
                        .enumerate()
                        .map(move |(channel, v)| (v.abs(), (token, channel)))
                })
                .fold((f32::NEG_INFINITY, (0, 0)), |best, (v, at)| {
                    if v > best.0 { (v, at) } else { best }
                })
        };
        let (output, output_at) = peak(run.output);
        if output == f32::NEG_INFINITY {
            return;
        }
        let (input, input_at) = peak(run.input);
        let found = DownPeak {
            layer,
            weight: run.weight.clone(),
            output,
            output_at,
            input,
            input_at,
        };
        match self.down.last_mut() {
            Some(last) if last.layer == layer => {
                if found.output > last.output {
                    *last = found;
                }
            }
            _ => self.down.push(found),
        }
    }
}
