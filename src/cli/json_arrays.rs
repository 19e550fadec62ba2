//! Large f32 arrays (a forward pass's output: a 32-token prompt's logits are 1.6 million values)
//! written into a command's JSON as it is serialized, not held first as a tree of
//! `serde_json::Value`s, which with ordered maps take 72 bytes a number.

use ndarray::ArrayViewD;
use serde::ser::{SerializeMap as _, SerializeSeq as _};
use serde::{Serialize, Serializer};
use serde_json::Value;

/// The JSON object `object` with the entries named in `arrays` written from those arrays (the
/// object holds a placeholder under each name, which keeps the entry's place in its order).
pub(super) struct WithArrays<'a> {
    pub(super) object: &'a Value,
    pub(super) arrays: Vec<(&'static str, ArrayViewD<'a, f32>)>,
}

impl Serialize for WithArrays<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Value::Object(entries) = self.object else {
            return self.object.serialize(s);
        };
        let mut map = s.serialize_map(Some(entries.len()))?;
        for (key, value) in entries {
            match self.arrays.iter().find(|(name, _)| name == key) {
                Some((_, array)) => map.serialize_entry(key, &Nested(array.view()))?,
                None => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

/// An N-D array as nested JSON lists; a value that is not finite (which JSON cannot hold) as
/// null, as every number paramscope writes.
struct Nested<'a>(ArrayViewD<'a, f32>);

impl Serialize for Nested<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = &self.0;
        if a.ndim() == 0 {
            let v = f64::from(*a.first().expect("a 0-D array holds one value"));
            return if v.is_finite() {
                s.serialize_f64(v)
            } else {
                s.serialize_none()
            };
        }
        let mut seq = s.serialize_seq(Some(a.len_of(ndarray::Axis(0))))?;
        for sub in a.outer_iter() {
            seq.serialize_element(&Nested(sub))?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, IxDyn};
    use serde_json::json;

    use super::WithArrays;

    /// The same text as the arrays put in the tree as numbers (null where not finite), in the
    /// object's order.
    #[test]
    fn arrays_are_written_in_place_as_the_tree_would_write_them() {
        let values = [1.5f32, -0.0, f32::NAN, 3.25e-7, f32::INFINITY, 2.0];
        let array = ArrayD::from_shape_vec(IxDyn(&[1, 2, 3]), values.to_vec()).unwrap();
        let scalar = ArrayD::from_elem(IxDyn(&[]), 0.1f32);
        let object = json!({"a": 1, "output": null, "b": [2], "s": null});
        let written = WithArrays {
            object: &object,
            arrays: vec![("output", array.view()), ("s", scalar.view())],
        };
        let number = |v: f32| {
            serde_json::Number::from_f64(f64::from(v)).map_or(json!(null), serde_json::Value::from)
        };
        let tree = json!({
            "a": 1,
            "output": [[values[..3].iter().map(|&v| number(v)).collect::<Vec<_>>(),
                        values[3..].iter().map(|&v| number(v)).collect::<Vec<_>>()]],
            "b": [2],
            "s": number(0.1),
        });
        assert_eq!(
            serde_json::to_string_pretty(&written).unwrap(),
            serde_json::to_string_pretty(&tree).unwrap()
        );
    }
}
