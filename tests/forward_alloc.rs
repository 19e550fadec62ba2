//! A forward pass allocates nothing once its buffers are sized: a counting global allocator
//! watches passes after the first.
//!
//! Allocations are counted on the test's own thread only, so the harness's threads do not count.

mod forward_support;

use forward_support::random;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use paramscope::model::arch;
use paramscope::model::demos;
use paramscope::model::forward::{ForwardBuffers, ForwardPlan};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the allocator may run while thread-locals are torn down.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = COUNT.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; counting has no side effect
// on the memory handed out.
#[expect(unsafe_code, reason = "a global allocator is an unsafe trait")]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded: `ptr` came from `System` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    COUNT.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    COUNT.with(Cell::get)
}

/// A net with every kind of step, and Linear layers big enough for the blocked path (packed
/// panels, per-thread packing buffers) yet small enough to stay on one thread.
const BIGGER: &str = "Sequential(
  (0): Linear(in_features=64, out_features=96, bias=True)
  (1): ReLU()
  (2): Linear(in_features=96, out_features=80, bias=False)
  (3): GELU(approximate='none')
  (4): Dropout(p=0.1, inplace=False)
  (5): Linear(in_features=80, out_features=40, bias=True)
  (6): Tanh()
  (7): Flatten(start_dim=0, end_dim=-1)
)";

/// Layers big enough to be split across the kernel's thread pool when there are two cores.
const WIDE: &str = "Sequential(
  (0): Linear(in_features=256, out_features=512, bias=True)
  (1): ReLU()
  (2): Linear(in_features=512, out_features=64, bias=True)
)";

#[test]
fn passes_after_the_first_allocate_nothing() {
    let bigger = arch::instantiate(&arch::parse(BIGGER).unwrap(), 1).unwrap();
    let cases = [
        ("rgnet", demos::build("rgnet", 0).unwrap(), vec![2, 4]),
        ("mlp", demos::build("mlp", 0).unwrap(), vec![3, 4]),
        ("shared", demos::build("shared", 0).unwrap(), vec![2, 4]),
        ("bigger", bigger, vec![2, 16, 64]),
        // The pool's hand-off allocates nothing on the calling thread (its workers keep their
        // own packing buffers, sized on their first part).
        (
            "wide",
            arch::instantiate(&arch::parse(WIDE).unwrap(), 3).unwrap(),
            vec![64, 256],
        ),
    ];
    for (name, model, shape) in cases {
        let plan = ForwardPlan::new(&model).unwrap();
        let x = random(&shape, 7);
        // An input in another layout is copied into the buffers' own input array.
        let reversed: Vec<usize> = shape.iter().rev().copied().collect();
        let xt = random(&reversed, 8).reversed_axes();
        assert!(!xt.is_standard_layout());
        let mut buffers = ForwardBuffers::default();
        let mut last = ForwardBuffers::default();
        plan.run_reusing(&mut buffers, &xt).unwrap();
        plan.run_last(&mut last, &xt).unwrap();
        let n = allocations(|| {
            for _ in 0..10 {
                plan.run_reusing(&mut buffers, &x).unwrap();
                plan.run_reusing(&mut buffers, &xt).unwrap();
                plan.run_last(&mut last, &x).unwrap();
                plan.run_last(&mut last, &xt).unwrap();
            }
        });
        assert_eq!(n, 0, "{name}: allocations in 40 passes after the first");
        // A new shape sizes the buffers again, once.
        let mut y = shape.clone();
        y[0] += 1;
        let x2 = random(&y, 9);
        assert!(
            allocations(|| {
                plan.run_reusing(&mut buffers, &x2).unwrap();
            }) > 0,
            "{name}: a new shape allocates (and the counter counts)"
        );
        let n = allocations(|| {
            plan.run_reusing(&mut buffers, &x2).unwrap();
        });
        assert_eq!(n, 0, "{name}: allocations in a pass after a resize");
    }
}
