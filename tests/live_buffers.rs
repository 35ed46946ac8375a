//! `live_buffers` read while other threads make Rust-owned buffers and free
//! them on other threads: never a false "released twice", and back to the
//! start count once they are done. (Its own test binary: the count is the
//! whole process's.)
//!
//! Under Miri, whose weak-memory emulation lets a `Relaxed` load read an
//! older store, a reader that loads the counters `Relaxed` instead of
//! `Acquire` fails here for some seeds (`-Zmiri-seed=1`, 2 and 3 of 0-3).
//! The deterministic interleaving is `src/owner/live.rs`'s unit test.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use dlbridge::{DType, Tensor, live_buffers};

/// Pairs of threads, one making buffers, the other freeing them.
const PAIRS: usize = 2;
/// Buffers each maker makes (a few dozen under Miri, which is slow).
const ROUNDS: usize = if cfg!(miri) { 32 } else { 20_000 };

#[test]
fn buffers_handed_across_threads_never_read_as_released_twice() {
    let start = live_buffers();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Reads the count the whole time; a false double release panics
        // here and fails the scope.
        let reader = scope.spawn(|| {
            let mut reads = 0usize;
            while !done.load(Ordering::Acquire) {
                live_buffers();
                reads += 1;
            }
            reads
        });
        // Pairs: one thread makes buffers and hands each to the other,
        // which frees it (on its own slot, not the maker's). A rendezvous
        // channel keeps at most a buffer or two per pair alive, so a free
        // seen without its make would read below zero.
        let workers: Vec<_> = (0..PAIRS)
            .flat_map(|_| {
                let (hand, take) = mpsc::sync_channel::<Tensor>(0);
                [
                    scope.spawn(move || {
                        for _ in 0..ROUNDS {
                            hand.send(Tensor::empty(&[1], DType::UINT8).unwrap())
                                .unwrap();
                        }
                    }),
                    scope.spawn(move || take.into_iter().for_each(drop)),
                ]
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        done.store(true, Ordering::Release);
        assert!(reader.join().unwrap() > 0);
    });
    assert_eq!(live_buffers(), start);
}
