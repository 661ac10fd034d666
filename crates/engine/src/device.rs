//! Choosing the compute device: CUDA or Metal when built in and present, otherwise the CPU.

use std::sync::atomic::{AtomicBool, Ordering};

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
/// While `f` runs, the pool's other workers wait for its kernels' work spinning instead of
/// sleeping: a decode step starts a few products per layer with short single-threaded work
/// between them, and a worker that had gone to sleep in between was woken for each (rayon's
/// sleeping, waking and yielding took about 15 % of a quantised decode profile on 2 cores).
/// llama.cpp's threads spin through a step in the same way.
pub fn on_pool<R: Send>(device: &Device, f: impl FnOnce() -> R + Send) -> R {
    match device {
        Device::Cpu => {
            let done = &AtomicBool::new(false);
            rayon::scope(|s| {
                let home = rayon::current_thread_index();
                for _ in 1..rayon::current_num_threads() {
                    s.spawn(move |_| spin_until(done, home));
                }
                let _finish = SetOnDrop(done);
                f()
            })
        }
        _ => f(),
    }
}

/// A worker of [`on_pool`]'s that runs the pool's jobs as they appear until `done`. Not on the
/// thread running the step (`home`): that one could pick this job up while it waits inside the
/// step, and would then wait for its own step to end.
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
            // Now and then the core goes to whoever else wants it: with more threads than
            // cores, a spinner must not hold up the step it waits for.
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
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
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

    /// Steps run on the pool from many places at once (callers outside it, jobs inside it, a
    /// step inside a step) all finish with their own answers: no worker is left spinning on
    /// a step that cannot end.
    #[test]
    fn steps_on_the_pool_finish_from_anywhere() {
        let sum = |n: u64| (0..n).into_par_iter().map(|i| i * i).sum::<u64>();
        let want = |n: u64| (0..n).map(|i| i * i).sum::<u64>();
        let inside: Vec<u64> = (0..16u64)
            .into_par_iter()
            .map(|i| on_pool(&Device::Cpu, || sum(1000 + i)))
            .collect();
        assert_eq!(inside, (0..16).map(|i| want(1000 + i)).collect::<Vec<_>>());
        let nested = on_pool(&Device::Cpu, || on_pool(&Device::Cpu, || sum(5000)));
        assert_eq!(nested, want(5000));
        let callers: Vec<_> = (0..4u64)
            .map(|i| std::thread::spawn(move || on_pool(&Device::Cpu, || sum(20_000 + i))))
            .collect();
        for (i, c) in callers.into_iter().enumerate() {
            assert_eq!(c.join().unwrap(), want(20_000 + i as u64));
        }
    }

    /// A step that panics still stops the spinning workers, and the panic reaches the caller.
    #[test]
    fn a_step_that_panics_stops_the_spinning() {
        let caught = std::panic::catch_unwind(|| on_pool(&Device::Cpu, || panic!("step failed")));
        assert!(caught.is_err());
        assert_eq!(on_pool(&Device::Cpu, || 7), 7);
    }
}
