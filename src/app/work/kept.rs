//! A plan (weights upcast and packed) kept on the worker between passes, rebuilt only when the
//! model was reloaded or a weight changed: the chain's and a family's both.

use crate::app::error::AppError;

/// The plan in `slot` when it was made for load `load` and `current` finds its weights unchanged,
/// else the one `make` builds (counted in `built`).
pub(super) fn keep_or_make<'s, P>(
    slot: &'s mut Option<(u64, P)>,
    load: u64,
    current: impl Fn(&P) -> bool,
    make: impl FnOnce() -> Result<P, AppError>,
    built: &mut usize,
) -> Result<&'s P, AppError> {
    if !slot
        .as_ref()
        .is_some_and(|(l, plan)| *l == load && current(plan))
    {
        // The old plan goes first, so two models' packed weights are never held at once.
        *slot = None;
        *slot = Some((load, make()?));
        *built += 1;
    }
    Ok(&slot.as_ref().expect("just made").1)
}
