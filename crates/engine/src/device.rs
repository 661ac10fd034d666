//! Choosing the compute device: CUDA or Metal when built in and present, otherwise the CPU.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use candle_core::Device;

use crate::{Error, Result};

/// `auto`, `cpu`, `cuda` or `metal`.
pub fn select(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Device::new_cuda(0).map_err(|e| {
            Error::config("device", format!("`cuda` is not available ({e}); use `cpu`, or a build with the cuda feature on a machine with an NVIDIA GPU"))
        }),
        "metal" => Device::new_metal(0).map_err(|e| {
            Error::config("device", format!("`metal` is not available ({e}); use `cpu`, or a build with the metal feature on a Mac"))
        }),
        "auto" | "" => {
            if candle_core::utils::cuda_is_available() {
                if let Ok(d) = Device::new_cuda(0) {
                    return Ok(d);
                }
            }
            if candle_core::utils::metal_is_available() {
                if let Ok(d) = Device::new_metal(0) {
                    return Ok(d);
                }
            }
            Ok(Device::Cpu)
        }
        other => Err(Error::config("device", format!("is `{other}`; use auto, cpu, cuda or metal"))),
    }
}

/// Settings for candle's CPU thread pool, to apply at the very start of `main`, before any other
/// thread exists (it sets environment variables, which is only sound then). Variables the user
/// set are left alone.
///
/// candle's pool workers spin for 25 000 rounds after each element-wise op before they sleep.
/// The matrix products run on a second pool (rayon's), so on a small machine that spinning takes
/// a core away from them: a profile of LoRA training on 2 cores found 12 % of the samples in the
/// spin loop. A short spin keeps quick successive ops quick and gives the core back.
///
/// candle asks how many threads to use on every matrix product, and without `RAYON_NUM_THREADS`
/// it counts the physical cores by reading `/proc/cpuinfo` each time: 23 000 reads while decoding
/// 600 tokens, a third of a quantised decode step's time in the kernel. The count is taken once
/// here and kept in that variable: candle's own answer (physical cores), but never more than the
/// CPUs this process may use (`taskset`, a container's limit), which candle does not look at.
pub fn configure_cpu_pool() {
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "1000");
    }
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let allowed = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = candle_core::utils::get_num_threads().min(allowed).max(1);
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}

/// Runs `f`, for work on `device`, on a worker thread of the CPU's global thread pool while the
/// caller waits. A decode step starts several parallel kernels per layer; started from outside the
/// pool, each hands its work in and puts the caller to sleep until the workers are done (two
/// thread wake-ups per kernel, a few hundred per token), while on a worker it starts at once and
/// the other workers join it. Other devices run `f` where it is (a GPU context belongs to its
/// thread). Only for small steps: `f`'s allocations come from the worker's own malloc arena, which
/// keeps what it frees (`tunesmith-malloc`), so large ones would pile up per worker; a training
/// step run this way kept 0.6 GB more at peak on `small`, and was no faster.
///
/// With `spin` (for a step whose products all run on this pool: see `Model`), the pool's other
/// workers spin while `f` runs instead of sleeping between its kernels: a decode step starts a few
/// products per layer with short single-threaded work between them, and a worker that had gone
/// to sleep in between was woken for each (rayon's sleeping, waking and yielding took about 15 %
/// of a quantised decode profile on 2 cores). llama.cpp's threads spin through a step in the same
/// way. A spinning worker runs whatever pool job appears, the step's or another's; the step does
/// not wait for it (the spinners are not part of the scope) and it stops at its next look after
/// the step ends. Without `spin` (candle's own thread pool does some of the products, as for
/// k-quants or without AVX2), spinning would take the cores its threads need.
///
/// No deadlock: the spinners are pushed onto the step's worker's queue before any of the step's
/// kernels, and other workers steal the oldest job first, so a worker that picks up a spinner is
/// never inside a wait of that step; the step's own worker, which could pop one while it waits
/// on a kernel, drops it at once.
pub fn on_pool<R: Send>(device: &Device, spin: bool, f: impl FnOnce() -> R + Send) -> R {
    match device {
        Device::Cpu => rayon::scope(|_| {
            let done = Arc::new(AtomicBool::new(false));
            if spin {
                let home = rayon::current_thread_index();
                for _ in 1..rayon::current_num_threads() {
                    let done = done.clone();
                    rayon::spawn(move || spin_until(&done, home));
                }
            }
            let _finish = SetOnDrop(done);
            f()
        }),
        _ => f(),
    }
}

/// A job of [`on_pool`]'s that spins on a worker, running the pool's jobs as they appear, until
/// `done`. Not on the thread running the step (`home`): that one could pick this job up while it
/// waits inside the step, and would then wait for its own step to end.
fn spin_until(done: &AtomicBool, home: Option<usize>) {
    if rayon::current_thread_index() == home {
        return;
    }
    let mut idle = 0u32;
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            idle = 0;
        } else {
            idle = idle.wrapping_add(1);
            // Now and then the core goes to whoever else wants it (more threads than cores).
            if idle.is_multiple_of(64) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// Sets its flag when dropped, so that [`on_pool`]'s spinning workers stop even when the step
/// panics.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A short name for reports.
pub fn describe(device: &Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", rayon::current_num_threads()),
        Device::Cuda(_) => "cuda".into(),
        Device::Metal(_) => "metal".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    /// Runs `f` on its own thread and fails if it has not finished within two minutes: a
    /// deadlock fails the test instead of hanging the suite.
    fn within_time(f: impl FnOnce() + Send + 'static) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            f();
            let _ = tx.send(());
        });
        match rx.recv_timeout(std::time::Duration::from_secs(120)) {
            Ok(()) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("steps did not finish"),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("a step panicked"),
        }
    }

    /// Spinning steps run on a pool of four workers from many places at once (callers outside
    /// it, jobs inside it, a step inside a step), many times over, all finish with their own
    /// answers: no worker is left spinning on a step that cannot end.
    #[test]
    fn spinning_steps_finish_from_anywhere() {
        within_time(|| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(4)
                .build()
                .unwrap();
            let sum = |n: u64| (0..n).into_par_iter().map(|i| i * i).sum::<u64>();
            let want = |n: u64| (0..n).map(|i| i * i).sum::<u64>();
            let step = |n: u64| on_pool(&Device::Cpu, true, || sum(n));
            for round in 0..50u64 {
                pool.install(|| {
                    let inside: Vec<u64> =
                        (0..16u64).into_par_iter().map(|i| step(100 + i)).collect();
                    assert_eq!(inside, (0..16).map(|i| want(100 + i)).collect::<Vec<_>>());
                    let nested = on_pool(&Device::Cpu, true, || step(500 + round));
                    assert_eq!(nested, want(500 + round));
                });
                let pool = &pool;
                std::thread::scope(|s| {
                    let callers: Vec<_> = (0..4u64)
                        .map(|i| s.spawn(move || pool.install(|| step(2_000 + i))))
                        .collect();
                    for (i, c) in callers.into_iter().enumerate() {
                        assert_eq!(c.join().unwrap(), want(2_000 + i as u64));
                    }
                });
            }
        });
    }

    /// A step that panics still stops the spinning workers, and the panic reaches the caller.
    #[test]
    fn a_step_that_panics_stops_the_spinning() {
        within_time(|| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(4)
                .build()
                .unwrap();
            pool.install(|| {
                let caught = std::panic::catch_unwind(|| {
                    on_pool(&Device::Cpu, true, || panic!("step failed"))
                });
                assert!(caught.is_err());
                assert_eq!(on_pool(&Device::Cpu, true, || 7), 7);
            });
        });
    }
}
