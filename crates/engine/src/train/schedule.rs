//! Learning-rate schedule and gradient clipping: the pure parts of the training loop.

/// Linear warm-up over `warmup` steps to `max_lr`, then cosine decay to `min_lr` at `total`.
/// `step` is 0-based (the step about to be taken).
pub fn lr_at(step: u64, total: u64, warmup: u64, max_lr: f64, min_lr: f64) -> f64 {
    if step < warmup {
        return max_lr * (step + 1) as f64 / warmup as f64;
    }
    if total <= warmup + 1 {
        return max_lr;
    }
    let progress = ((step - warmup) as f64 / (total - warmup - 1) as f64).min(1.0);
    min_lr + 0.5 * (max_lr - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// The factor that scales gradients of global norm `norm` down to `max_norm` (1 when already
/// smaller, or when clipping is off with `max_norm` ≤ 0).
pub fn clip_factor(norm: f64, max_norm: f64) -> f64 {
    if max_norm <= 0.0 || norm <= max_norm {
        1.0
    } else {
        max_norm / (norm + 1e-6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        assert!((lr_at(0, 100, 10, 1.0, 0.1) - 0.1).abs() < 1e-12);
        assert!((lr_at(9, 100, 10, 1.0, 0.1) - 1.0).abs() < 1e-12);
        assert!((lr_at(10, 100, 10, 1.0, 0.1) - 1.0).abs() < 1e-12);
        // Half-way through the decay: the mean of max and min.
        let mid = 10.0 + (100 - 10 - 1) as f64 / 2.0;
        assert!((lr_at(mid as u64, 100, 10, 1.0, 0.1) - 0.55).abs() < 0.02);
        assert!((lr_at(99, 100, 10, 1.0, 0.1) - 0.1).abs() < 1e-12);
        assert!(
            (lr_at(5, 5, 0, 2.0, 0.2) - 0.2).abs() < 1e-12,
            "beyond total stays at min"
        );
        assert_eq!(lr_at(0, 1, 0, 3.0, 0.3), 3.0);
    }

    #[test]
    fn clipping() {
        assert_eq!(clip_factor(0.5, 1.0), 1.0);
        assert!((clip_factor(4.0, 1.0) - 0.25).abs() < 1e-6);
        assert_eq!(clip_factor(100.0, 0.0), 1.0);
    }
}
