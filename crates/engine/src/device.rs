//! Choosing the compute device: CUDA or Metal when built in and present, otherwise the CPU.

use candle_core::Device;

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

/// A short name for reports.
pub fn describe(device: &Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", rayon::current_num_threads()),
        Device::Cuda(_) => "cuda".into(),
        Device::Metal(_) => "metal".into(),
    }
}
