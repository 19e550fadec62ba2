//! Numbers and text as the screen writes them: counts, values in at most 9 columns, byte sizes,
//! gauges, paths shortened in the middle, and text wrapped to a width.

/// `n` and the noun, plural unless one: `1 tensor`, `24 keys`.
#[must_use]
pub fn counted(n: usize, what: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{n} {what}{s}")
}

/// A count as people read it: 1234 -> 1234; big ones shortened (1.2M).
#[must_use]
pub fn count(n: usize) -> String {
    match n {
        0..10_000 => n.to_string(),
        10_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.1}G", n as f64 / 1e9),
    }
}

/// A value in at most 9 characters: whole numbers exactly, others in fixed point when readable,
/// else scientific.
#[must_use]
pub fn num(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else if v == 0.0 {
        "0".into()
    } else if v.fract() == 0.0 && v.abs() < 1e8 {
        format!("{v:.0}")
    } else if (1e-3..1e3).contains(&v.abs()) {
        format!("{v:.4}")
    } else if (1e3..1e5).contains(&v.abs()) {
        format!("{v:.2}")
    } else {
        format!("{v:.2e}")
    }
}

/// A value in three significant digits, its exponent kept: fixed point from 0.01 to 999, else
/// `2.42e-4`; shorter than [`num`]'s, for the places where several share a line.
#[must_use]
pub fn short(v: f64) -> String {
    significant(v, 3)
}

/// A value in `digits` significant digits (at least 1), as [`short`] writes three: where a line
/// of several would not fit, fewer digits rather than a number cut.
#[must_use]
pub fn significant(v: f64, digits: usize) -> String {
    let digits = digits.max(1);
    if v == 0.0 || !v.is_finite() {
        num(v)
    } else if (0.01..999.5).contains(&v.abs()) {
        let decimals = (digits as i32 - 1) - v.abs().log10().floor().clamp(-2.0, 2.0) as i32;
        format!("{v:.*}", decimals.max(0) as usize)
    } else {
        format!("{v:.*e}", digits - 1)
    }
}

/// Bytes as people read them.
#[must_use]
pub fn bytes(n: usize) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", n as f64 / 1_048_576.0),
        _ => format!("{:.2} GiB", n as f64 / 1_073_741_824.0),
    }
}

/// Rising blocks, one to eight eighths high.
const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// `values` as a sparkline of at most `width` cells, each the largest value of its share of them,
/// scaled to the largest finite value (all zeros draw flat); a value that is not finite is `×`.
#[must_use]
pub fn sparkline(values: &[f64], width: usize) -> String {
    if values.is_empty() || width == 0 {
        return String::new();
    }
    let cells = values.len().min(width);
    let cell = |i: usize| {
        let share = &values[i * values.len() / cells..(i + 1) * values.len() / cells];
        // NaN wins: a share holding one is marked, not hidden by its neighbours.
        share.iter().copied().fold(0.0f64, |a, v| {
            if a.is_nan() || !v.is_finite() {
                f64::NAN
            } else {
                a.max(v)
            }
        })
    };
    let shown: Vec<f64> = (0..cells).map(cell).collect();
    let top = shown
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    shown
        .iter()
        .map(|&v| {
            if !v.is_finite() {
                '×'
            } else if top > 0.0 {
                LEVELS[((v.max(0.0) / top) * 7.0).round() as usize]
            } else {
                LEVELS[0]
            }
        })
        .collect()
}

/// A text progress bar of `width` cells.
#[must_use]
pub fn gauge(done: f64, width: usize) -> String {
    let filled = ((done.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

/// `text` in at most `width` characters: whole when it fits, else its start and end around `…`,
/// the end (the file name) given the larger part.
#[must_use]
pub fn middle_ellipsis(text: &str, width: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let keep = width - 1;
    let head = keep / 3;
    let tail = keep - head;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// `text` in lines of at most `width` columns, broken at spaces (a word longer than a line is
/// cut into pieces).
#[must_use]
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let used = line.chars().count();
            let gap = usize::from(used > 0);
            if used + gap + word.len() <= width {
                if gap == 1 {
                    line.push(' ');
                }
                line.extend(word.iter());
                break;
            }
            if used > 0 {
                lines.push(std::mem::take(&mut line));
                continue;
            }
            let rest = word.split_off(width);
            lines.push(word.iter().collect());
            word = rest;
        }
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::{counted, middle_ellipsis, short, significant, sparkline, wrap};

    #[test]
    fn a_sparkline_scales_to_its_largest_value_and_marks_nan() {
        assert_eq!(sparkline(&[0.0, 0.5, 1.0], 10), "▁▅█");
        assert_eq!(sparkline(&[0.0, 0.0], 10), "▁▁");
        assert_eq!(sparkline(&[0.0, f64::NAN, 2.0], 10), "▁×█");
        // Six values in three cells: each the largest of its pair, a NaN kept.
        assert_eq!(sparkline(&[0.0, 1.0, 4.0, 2.0, f64::NAN, 0.0], 3), "▃█×");
        assert_eq!(sparkline(&[], 3), "");
    }

    #[test]
    fn fewer_significant_digits_keep_the_exponent() {
        assert_eq!(significant(-1.234e-10, 2), "-1.2e-10");
        assert_eq!(significant(0.0332, 2), "0.033");
        assert_eq!(significant(-0.3378, 2), "-0.34");
        assert_eq!(significant(6.51e-5, 3), short(6.51e-5));
        assert_eq!(significant(0.0, 2), "0");
    }

    #[test]
    fn short_values_keep_three_digits_and_their_exponent() {
        assert_eq!(short(6.51e-5), "6.51e-5");
        assert_eq!(short(-2.4249e-4), "-2.42e-4");
        assert_eq!(short(0.0332), "0.0332");
        assert_eq!(short(-0.3378), "-0.338");
        assert_eq!(short(999.7), "1.00e3");
        assert_eq!(short(123_456.0), "1.23e5");
        assert_eq!(short(0.0), "0");
        assert_eq!(short(-9.99e-30), "-9.99e-30");
    }

    #[test]
    fn one_is_singular_and_the_rest_plural() {
        assert_eq!(counted(1, "tensor"), "1 tensor");
        assert_eq!(counted(0, "tensor"), "0 tensors");
        assert_eq!(counted(24, "key"), "24 keys");
    }

    #[test]
    fn long_paths_keep_their_start_and_their_file_name() {
        assert_eq!(middle_ellipsis("demo:mlp", 20), "demo:mlp");
        assert_eq!(
            middle_ellipsis("/home/user/models/run-42/model.safetensors", 20),
            "/home/…l.safetensors"
        );
        assert_eq!(middle_ellipsis("abc", 0), "");
    }

    #[test]
    fn wrapping_breaks_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap("cannot run module 0", 10), ["cannot run", "module 0"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 4), [""]);
    }
}
