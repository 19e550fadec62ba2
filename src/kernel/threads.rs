//! Threads: how many a product gets, and a small persistent pool that runs its parts.
//!
//! `PARAMSCOPE_THREADS=N` caps the count (1 = single-threaded, no pool is ever started); it is
//! read once. The default is the machine's available parallelism.
//!
//! Why a pool of our own rather than scoped threads or rayon: a product splits into at most as many
//! parts as there are cores, each a whole blocked product, so there is nothing for work stealing to
//! balance; what matters is the hand-off. Spawning a thread per call cost ~20 µs and gave each part
//! fresh packing buffers (page faults on ~700 KB), so products under ~10 µs per thread gained
//! nothing from a second core. The pool's workers live as long as the process, keep their
//! thread-local packing buffers, and spin for a while after each job before parking, so a
//! hand-off between back-to-back products costs well under a microsecond, and a pass through the
//! pool allocates nothing.
//!
//! One caller at a time: a product that finds the pool busy (another thread is multiplying)
//! runs all its parts itself, which is what a busy machine would make of them anyway.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError, TryLockError};

use ndarray::{ArrayViewMut2, Axis};
use std::thread::{self, Thread};

/// Multiply-adds a part must have to be worth a thread: about 1.5 µs of a core's work, a few times
/// the cost of handing it to a pool worker that is awake.
const MIN_WORK_PER_THREAD: usize = 1 << 18;

/// How long an idle worker spins before parking, in spin-loop hints: ~50 µs on Zen 5, where one
/// hint (`pause`) takes ~25 ns. Long enough to catch the next product of a loop or the next layer
/// of a forward pass, short enough not to hold a shared core for long.
const IDLE_SPIN: u32 = 1 << 11;

/// How long a caller whose parts are done spins for its workers' before parking (~400 µs): its
/// core has nothing else to do, and a wake-up from park costs several µs. Measured on
/// 1×4096×4096 with two threads, where the halves end at slightly different times: 36 GFLOP/s
/// against 30-33 with a 50 µs spin.
const WAIT_SPIN: u32 = 1 << 14;

/// The cap on threads: every core available, or fewer if `PARAMSCOPE_THREADS` is a smaller positive
/// number (more threads than cores would only spin against each other).
pub fn max_threads() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        let cores = thread::available_parallelism().map_or(1, usize::from);
        parse_threads(std::env::var("PARAMSCOPE_THREADS").ok().as_deref())
            .map_or(cores, |n| n.min(cores))
    })
}

/// The thread count a `PARAMSCOPE_THREADS` value asks for: a positive number, else none.
fn parse_threads(value: Option<&str>) -> Option<usize> {
    value
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
}

/// Threads worth using for `work` multiply-adds that can be cut into at most `units` parts.
pub(crate) fn count(work: usize, units: usize) -> usize {
    count_for(max_threads(), work, units)
}

fn count_for(max: usize, work: usize, units: usize) -> usize {
    (work / MIN_WORK_PER_THREAD).clamp(1, max.min(units).clamp(1, MAX_PARTS))
}

/// How many parts to cut `work` multiply-adds into, at most `units`: one when a single thread
/// should do it all, else a few per thread ([`PARTS_PER_THREAD`]), each still worth a thread's
/// hand-off.
///
/// Parts are claimed as threads come free (see [`Pool::run`]), so a core slowed by another
/// process (a busy machine, a VM's neighbours) takes fewer of them instead of holding the others
/// waiting at the end of every product. On two threads of a shared VM, a batch of 8 × 128 tokens
/// through MiniLM took 0.97x and 0.89x the time it took with one part per thread (medians of two
/// sets of 12 paired runs), and 0.89x with only the products cut finer.
pub(crate) fn parts(work: usize, units: usize) -> usize {
    parts_with(count(work, units), work, units)
}

/// [`parts`] for `threads` threads.
fn parts_with(threads: usize, work: usize, units: usize) -> usize {
    if threads <= 1 {
        return threads;
    }
    (threads * PARTS_PER_THREAD)
        .min(units)
        .min(work / MIN_WORK_PER_THREAD)
        .clamp(threads, MAX_PARTS)
}

/// Parts per thread in [`parts`]: enough to even out a core that runs a fifth slower, few enough
/// that each product's parts re-read little of the operand they share.
const PARTS_PER_THREAD: usize = 4;

/// The most parts a product is cut into: [`run_split`] keeps the pieces on the stack.
const MAX_PARTS: usize = 64;

/// Cuts `c` along `axis` into `parts` pieces whose lengths are multiples of `unit` (the last takes
/// the rest) and runs `work(offset, piece)` on each, as [`run`] does; allocates nothing.
pub(crate) fn run_split(
    c: ArrayViewMut2<f32>,
    axis: Axis,
    parts: usize,
    unit: usize,
    work: &(dyn Fn(usize, ArrayViewMut2<f32>) + Sync),
) {
    let parts = parts.clamp(1, MAX_PARTS);
    let len = c.len_of(axis);
    let slots: [Mutex<Option<ArrayViewMut2<f32>>>; MAX_PARTS] =
        std::array::from_fn(|_| Mutex::new(None));
    let mut rest = c;
    for (i, slot) in slots.iter().enumerate().take(parts) {
        let (_, width) = part_range(len, parts, unit, i);
        let (head, tail) = rest.split_at(axis, width);
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(head);
        rest = tail;
    }
    run(parts, &|i| {
        let (start, width) = part_range(len, parts, unit, i);
        let piece = slots[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .expect("each part takes its piece once");
        if width > 0 {
            work(start, piece);
        }
    });
}

/// The range of `0..len` that part `index` of `parts` takes: lengths are multiples of `unit`
/// (the last takes the rest), and some trailing parts may be empty.
pub(crate) fn part_range(len: usize, parts: usize, unit: usize, index: usize) -> (usize, usize) {
    let step = len.div_ceil(parts).next_multiple_of(unit);
    let start = (index * step).min(len);
    let end = if index + 1 == parts {
        len
    } else {
        (start + step).min(len)
    };
    (start, end - start)
}

/// Runs `work(i)` for every `i < parts`: part 0 on the calling thread, the others on the global
/// pool's workers (or on the calling thread when the pool is busy). Returns when all are done; a
/// panic in any part is raised again here.
pub(crate) fn run(parts: usize, work: &(dyn Fn(usize) + Sync)) {
    static POOL: OnceLock<Pool> = OnceLock::new();
    if parts <= 1 {
        if parts == 1 {
            work(0);
        }
        return;
    }
    POOL.get_or_init(|| Pool::new(max_threads().saturating_sub(1)))
        .run(parts, work);
}

/// A fixed set of worker threads, each with one job slot.
pub(crate) struct Pool {
    workers: Vec<&'static Slot>,
    /// Held by the one caller using the workers.
    busy: Mutex<()>,
}

/// A worker's mailbox.
struct Slot {
    full: AtomicBool,
    job: Mutex<Option<Job>>,
    thread: OnceLock<Thread>,
}

/// A worker's invitation to help with one `run`.
struct Job {
    work: *const (dyn Fn(usize) + Sync),
    latch: *const Latch,
}

// SAFETY: a Job is a borrowed `Fn + Sync` and a latch of atomics and a mutex, both made to be
// shared across threads; `Pool::run` keeps them alive until every worker that took the job is done.
unsafe impl Send for Job {}

/// The shared state of one `run`: the next part to claim, and the workers still inside it.
struct Latch {
    next: AtomicUsize,
    parts: usize,
    /// Workers that were sent the job and have not finished with it (or had it taken back).
    pending: AtomicUsize,
    owner: Thread,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Latch {
    /// Runs parts until none is left unclaimed.
    fn claim_and_run(&self, work: &(dyn Fn(usize) + Sync)) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.parts {
                return;
            }
            work(i);
        }
    }

    /// A worker is done with this run.
    fn done(&self) {
        // Clone the handle first: once `pending` reaches zero the caller may return and free us.
        let owner = self.owner.clone();
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            owner.unpark();
        }
    }

    fn wait(&self) {
        let mut spins = 0u32;
        while self.pending.load(Ordering::Acquire) != 0 {
            if spins < WAIT_SPIN {
                spins += 1;
                std::hint::spin_loop();
            } else {
                thread::park();
            }
        }
    }
}

impl Slot {
    fn send(&self, job: Job) {
        let mut slot = self.job.lock().unwrap_or_else(PoisonError::into_inner);
        *slot = Some(job);
        self.full.store(true, Ordering::Release);
        drop(slot);
        self.thread.get().expect("set at start").unpark();
    }

    /// Takes the job back if the worker has not taken it yet.
    fn revoke(&self) -> bool {
        let mut slot = self.job.lock().unwrap_or_else(PoisonError::into_inner);
        self.full.store(false, Ordering::Release);
        slot.take().is_some()
    }

    fn take(&self) -> Option<Job> {
        let mut slot = self.job.lock().unwrap_or_else(PoisonError::into_inner);
        self.full.store(false, Ordering::Release);
        slot.take()
    }
}

impl Pool {
    /// A pool of `workers` threads (0 is allowed: every part then runs on the caller).
    pub(crate) fn new(workers: usize) -> Self {
        // A thread the system refuses (a process or memory limit) leaves a smaller pool; the
        // caller's thread always works, so even none at all only means less parallelism.
        let workers = (0..workers)
            .map_while(|i| {
                let slot: &'static Slot = Box::leak(Box::new(Slot {
                    full: AtomicBool::new(false),
                    job: Mutex::new(None),
                    thread: OnceLock::new(),
                }));
                let handle = thread::Builder::new()
                    .name(format!("paramscope-kernel-{}", i + 1))
                    .spawn(move || worker(slot))
                    .ok()?;
                slot.thread.set(handle.thread().clone()).expect("set once");
                Some(slot)
            })
            .collect();
        Self {
            workers,
            busy: Mutex::new(()),
        }
    }

    /// Runs `work(i)` for every `i < parts`, as [`run`] does, with this pool.
    ///
    /// Parts are claimed, not assigned: the caller and the workers it woke take the next unclaimed
    /// part until none is left. A worker the scheduler has not run yet (the machine is busy) thus
    /// delays nothing: the caller does its share, then takes back the job the worker never picked
    /// up.
    pub(crate) fn run(&self, parts: usize, work: &(dyn Fn(usize) + Sync)) {
        let guard = match self.busy.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        let helpers = match guard {
            Some(_) => self.workers.len().min(parts - 1),
            None => 0,
        };
        let latch = Latch {
            next: AtomicUsize::new(0),
            parts,
            pending: AtomicUsize::new(helpers),
            owner: thread::current(),
            panic: Mutex::new(None),
        };
        // SAFETY: only the lifetime is erased. `Waiter` below blocks (even while unwinding) until
        // every worker sent the job has finished with `work` and `latch` or had the job taken
        // back, so neither is used after this function returns.
        let erased: *const (dyn Fn(usize) + Sync) = unsafe {
            std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(work)
        };
        let sent = &self.workers[..helpers];
        for slot in sent {
            slot.send(Job {
                work: erased,
                latch: &raw const latch,
            });
        }
        {
            let _waiter = Waiter {
                latch: &latch,
                sent,
            };
            latch.claim_and_run(work);
        }
        let panic = latch
            .panic
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(guard);
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
    }
}

/// Takes back the jobs no worker picked up, then waits for the workers that did, when dropped: a
/// run waits for its workers even while unwinding.
struct Waiter<'l> {
    latch: &'l Latch,
    sent: &'l [&'static Slot],
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        for slot in self.sent {
            if slot.revoke() {
                self.latch.pending.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.latch.wait();
    }
}

/// A worker's life: take a job, run parts until none is left, sign off; spin a while when idle,
/// then park.
fn worker(slot: &'static Slot) {
    let mut idle = 0u32;
    loop {
        if slot.full.load(Ordering::Acquire) {
            if let Some(Job { work, latch }) = slot.take() {
                // SAFETY: `Pool::run` keeps `work` and `latch` alive until `pending` reaches zero,
                // which happens only in `done` below, after the last use of `work`.
                let (work, latch) = unsafe { (&*work, &*latch) };
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| latch.claim_and_run(work))) {
                    *latch.panic.lock().unwrap_or_else(PoisonError::into_inner) = Some(payload);
                }
                latch.done();
            }
            idle = 0;
        } else if idle < IDLE_SPIN {
            idle += 1;
            std::hint::spin_loop();
        } else {
            thread::park();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn the_variable_is_read_as_a_positive_count() {
        assert_eq!(parse_threads(Some("1")), Some(1));
        assert_eq!(parse_threads(Some(" 2 ")), Some(2));
        assert_eq!(parse_threads(Some("0")), None);
        assert_eq!(parse_threads(Some("two")), None);
        assert_eq!(parse_threads(None), None);
    }

    #[test]
    fn counts_respect_the_cap_the_work_and_the_units() {
        // PARAMSCOPE_THREADS=1: never more than one, whatever the work.
        assert_eq!(count_for(1, usize::MAX / 2, 1000), 1);
        // PARAMSCOPE_THREADS=2.
        assert_eq!(count_for(2, 1 << 30, 1000), 2);
        assert_eq!(count_for(2, MIN_WORK_PER_THREAD - 1, 1000), 1);
        assert_eq!(count_for(2, 1 << 30, 1), 1);
        assert_eq!(count_for(8, 3 * MIN_WORK_PER_THREAD, 1000), 3);
    }

    #[test]
    fn parts_are_a_few_per_thread_each_worth_a_hand_off() {
        assert_eq!(parts_with(1, 1 << 30, 1000), 1);
        assert_eq!(parts_with(2, 1 << 30, 1000), 2 * PARTS_PER_THREAD);
        // No more parts than units, nor than the work can pay for, nor fewer than threads.
        assert_eq!(parts_with(2, 1 << 30, 5), 5);
        assert_eq!(parts_with(2, 3 * MIN_WORK_PER_THREAD, 1000), 3);
        assert_eq!(parts_with(2, 2 * MIN_WORK_PER_THREAD, 1000), 2);
        assert_eq!(parts_with(64, usize::MAX, usize::MAX), MAX_PARTS);
    }

    #[test]
    fn parts_tile_the_range() {
        for len in [0, 1, 5, 31, 32, 33, 100, 4096] {
            for parts in 1..5 {
                for unit in [1, 12, 32] {
                    let mut next = 0;
                    for i in 0..parts {
                        let (start, width) = part_range(len, parts, unit, i);
                        assert_eq!(start, next, "len {len} parts {parts} unit {unit}");
                        // Only a part that ends the range may be cut short of the unit.
                        if start + width < len {
                            assert_eq!(width % unit, 0);
                        }
                        next = start + width;
                    }
                    assert_eq!(next, len);
                }
            }
        }
    }

    /// Every part runs exactly once, for pools of 0, 1 and 2 workers (PARAMSCOPE_THREADS=1, 2, 3).
    #[test]
    fn every_part_runs_once() {
        for workers in 0..3 {
            let pool = Pool::new(workers);
            for parts in 1..6 {
                for _ in 0..200 {
                    let hits: Vec<AtomicU32> = (0..parts).map(|_| AtomicU32::new(0)).collect();
                    pool.run(parts, &|i| {
                        hits[i].fetch_add(1, Ordering::Relaxed);
                    });
                    assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
                }
            }
        }
    }

    #[test]
    fn parts_run_on_the_workers() {
        let pool = Pool::new(1);
        let me = thread::current().id();
        let other = AtomicBool::new(false);
        pool.run(2, &|i| {
            if i == 0 {
                // The caller claims part 0 first; hold it until a worker has claimed part 1.
                let start = std::time::Instant::now();
                while !other.load(Ordering::Acquire) && start.elapsed().as_secs() < 5 {
                    std::hint::spin_loop();
                }
            } else if thread::current().id() != me {
                other.store(true, Ordering::Release);
            }
        });
        assert!(other.load(Ordering::Relaxed));
    }

    /// A worker that never runs delays nothing: the caller does every part itself.
    #[test]
    fn a_late_worker_is_not_waited_for() {
        let pool = Pool::new(1);
        // Keep the worker busy inside a first run's part, so it cannot take the second run's job.
        let release = AtomicBool::new(false);
        thread::scope(|s| {
            s.spawn(|| {
                pool.run(2, &|i| {
                    if i == 1 {
                        while !release.load(Ordering::Acquire) {
                            std::hint::spin_loop();
                        }
                    }
                });
            });
            // The pool is busy or its worker is: either way this run completes on its own.
            let ran = AtomicU32::new(0);
            Pool::new(0).run(3, &|_| {
                ran.fetch_add(1, Ordering::Relaxed);
            });
            pool.run(3, &|_| {
                ran.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(ran.load(Ordering::Relaxed), 6);
            release.store(true, Ordering::Release);
        });
    }

    #[test]
    fn callers_at_once_all_finish() {
        let pool = Pool::new(2);
        let total = AtomicU32::new(0);
        thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..500 {
                        pool.run(3, &|_| {
                            total.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 4 * 500 * 3);
    }

    #[test]
    fn a_panic_in_a_worker_reaches_the_caller_and_the_pool_survives() {
        let pool = Pool::new(1);
        let caught = catch_unwind(AssertUnwindSafe(|| {
            pool.run(2, &|i| assert!(i != 1, "part one fails"));
        }));
        assert!(caught.is_err());
        let ran = AtomicU32::new(0);
        pool.run(2, &|_| {
            ran.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(ran.load(Ordering::Relaxed), 2);
    }
}
