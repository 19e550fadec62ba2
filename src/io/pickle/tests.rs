//! The machine on hand-written pickles: what torch emits, and what a hostile file tries.

use super::flatten::{Leaf, MAX_DEPTH, Scalar, flatten};
use super::{Problem, unpickle};

/// Runs `body` after PROTO 2 and flattens what STOP returns.
fn run(body: &[u8]) -> Result<Vec<(String, Leaf)>, String> {
    let mut bytes = vec![0x80, 2];
    bytes.extend_from_slice(body);
    let unpickled = unpickle(&bytes, 0).map_err(|e| e.to_string())?;
    flatten(&unpickled).map_err(|e| e.to_string())
}

fn problem(body: &[u8]) -> Problem {
    let mut bytes = vec![0x80, 2];
    bytes.extend_from_slice(body);
    unpickle(&bytes, 0).unwrap_err().problem
}

#[test]
fn a_dict_of_values_flattens_to_names() {
    // {'a': 7, 'b': [1.5, None], 'c': {'d': True}}
    let body =
        b"}q\x00(X\x01\x00\x00\x00aK\x07X\x01\x00\x00\x00b]q\x01(G?\xf8\x00\x00\x00\x00\x00\x00Ne\
X\x01\x00\x00\x00c}q\x02X\x01\x00\x00\x00d\x88su.";
    let leaves = run(body).unwrap();
    let shown: Vec<(String, String)> = leaves
        .into_iter()
        .map(|(name, leaf)| match leaf {
            Leaf::Value(v) => (name, v.to_string()),
            Leaf::Tensor(_) => (name, "tensor".into()),
        })
        .collect();
    let want = [("a", "7"), ("b.0", "1.5"), ("b.1", "None"), ("c.d", "True")];
    assert_eq!(
        shown,
        want.map(|(a, b)| (a.to_owned(), b.to_owned())).to_vec()
    );
}

#[test]
fn a_memoized_list_filled_later_is_seen_filled() {
    // l = []; memo it; append 1; then {'x': l, 'y': memo[0]}
    let body = b"]q\x00K\x01a0}(X\x01\x00\x00\x00xh\x00X\x01\x00\x00\x00yh\x00u.";
    let leaves = run(body).unwrap();
    assert_eq!(
        leaves,
        [
            ("x.0".to_owned(), Leaf::Value(Scalar::Int(1))),
            ("y".to_owned(), Leaf::Value(Scalar::Same("x".into())))
        ]
    );
}

#[test]
fn broken_pickles_name_the_problem() {
    assert_eq!(problem(b"R."), Problem::StackUnderflow);
    assert_eq!(problem(b"h\x05."), Problem::MemoMiss(5));
    assert_eq!(problem(b"N"), Problem::NoStop);
    assert_eq!(problem(b"\xff."), Problem::UnknownOpcode);
    assert!(matches!(
        problem(b"X\xff\xff\xff\x7f"),
        Problem::Truncated { .. }
    ));
    // A MARK hides what is below it.
    assert_eq!(problem(b"N(0."), Problem::StackUnderflow);
}

#[test]
fn calls_outside_the_allow_list_build_nothing_and_are_recorded() {
    // os.system('touch x') then argparse.Namespace() with state {'lr': 0.1}
    let body = b"}(X\x01\x00\x00\x00acos\nsystem\nX\x07\x00\x00\x00touch x\x85R\
X\x01\x00\x00\x00bcargparse\nNamespace\n)\x81}X\x02\x00\x00\x00lrG?\xb9\x99\x99\x99\x99\x99\x9asbu.";
    let mut bytes = vec![0x80, 2];
    bytes.extend_from_slice(body);
    let unpickled = unpickle(&bytes, 0).unwrap();
    assert_eq!(unpickled.foreign, ["os.system", "argparse.Namespace"]);
    let leaves = flatten(&unpickled).unwrap();
    let names: Vec<(&str, String)> = leaves
        .iter()
        .map(|(n, l)| match l {
            Leaf::Value(v) => (n.as_str(), v.to_string()),
            Leaf::Tensor(_) => (n.as_str(), String::new()),
        })
        .collect();
    assert_eq!(
        names,
        [
            ("a", "<os.system>".to_owned()),
            ("b", "<argparse.Namespace>".to_owned()),
            ("b.lr", "0.1".to_owned())
        ]
    );
}

#[test]
fn a_list_holding_itself_is_listed_once() {
    // l = [1]; l.append(l)
    let leaves = run(b"]q\x00K\x01ah\x00a.").unwrap();
    assert_eq!(
        leaves,
        [
            ("0".to_owned(), Leaf::Value(Scalar::Int(1))),
            ("1".to_owned(), Leaf::Value(Scalar::Same("the root".into())))
        ]
    );
}

#[test]
fn shared_containers_cannot_multiply_the_names() {
    // Each level is a pair of the level below: 2^40 paths to the bottom, 41 names.
    let mut body = b"N".to_vec();
    for _ in 0..40 {
        body.extend_from_slice(b"2\x86");
    }
    body.push(b'.');
    let leaves = run(&body).unwrap();
    assert_eq!(leaves.len(), 41);
}

#[test]
fn nesting_past_the_cap_is_refused() {
    let depth = MAX_DEPTH + 10;
    let mut body = vec![b']'; depth];
    body.extend(vec![b'a'; depth - 1]);
    body.push(b'.');
    let err = run(&body).unwrap_err();
    assert!(err.contains("nests deeper than"), "{err}");
}

#[test]
fn a_global_named_but_never_called_is_recorded_and_so_is_one_before_an_error() {
    // [functools.partial] by STACK_GLOBAL, never called; then torch.os.system (a dotted name).
    let body = b"]\x8c\tfunctools\x8c\x07partial\x93a\x8c\x05torch\x8c\tos.system\x93a.";
    let mut bytes = vec![0x80, 4];
    bytes.extend_from_slice(body);
    let unpickled = unpickle(&bytes, 0).unwrap();
    assert_eq!(unpickled.foreign, ["functools.partial", "torch.os.system"]);
    let error = unpickle(b"\x80\x02cos\nsystem\n\xff.", 0).unwrap_err();
    assert_eq!(error.problem, Problem::UnknownOpcode);
    assert_eq!(error.foreign, ["os.system"]);
}

#[test]
fn millions_of_empty_containers_meet_the_byte_budget() {
    // MARK, 4 million EMPTY_DICTs, LIST: over 1 GiB as Python would build it.
    let mut body = vec![b'('];
    body.extend(std::iter::repeat_n(b'}', 4 << 20));
    body.extend_from_slice(b"l.");
    let err = run(&body).unwrap_err();
    assert!(err.contains("bytes of values built"), "{err}");
}

#[test]
fn a_memoized_string_named_many_times_meets_the_text_budget() {
    // A 1 MiB string memoized, then a list of 400 references to it.
    let mut body = b"X\x00\x00\x10\x00".to_vec();
    body.extend(std::iter::repeat_n(b's', 1 << 20));
    body.extend_from_slice(b"q\x00(");
    body.extend(std::iter::repeat_n(*b"h\x00", 400).flatten());
    body.extend_from_slice(b"l.");
    let err = run(&body).unwrap_err();
    assert!(err.contains("bytes of names and strings"), "{err}");
}
