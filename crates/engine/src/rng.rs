//! Seeded, counter-based randomness. Candle cannot seed its CPU generator, so initialisation,
//! dropout masks and batch sampling draw from here. Streams are derived from `(seed, purpose,
//! step, …)` instead of advancing one global state, so a resumed run draws exactly the numbers
//! the uninterrupted run would have drawn without saving any generator state.

/// SplitMix64: tiny, fast and good enough for masks, sampling and initialisation.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// An independent stream for a purpose and a list of counters (step, micro-batch, layer…).
    pub fn derive(seed: u64, purpose: &str, counters: &[u64]) -> Self {
        let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
        for b in purpose.bytes() {
            h = mix(h ^ b as u64);
        }
        for &c in counters {
            h = mix(h ^ c.wrapping_mul(0xA24B_AED4_963E_E407));
        }
        Rng(h)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in [0, 1) with 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, n). `n` must be > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift: unbiased enough for n far below 2^64.
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Standard normal via Box–Muller.
    pub fn normal(&mut self) -> f32 {
        let u1 = self.next_f64().max(1e-300);
        let u2 = self.next_f64();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map(|_| Rng::derive(7, "x", &[1, 2]).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::derive(7, "x", &[1, 2]).next_u64(),
            Rng::derive(7, "x", &[2, 1]).next_u64()
        );
        assert_ne!(
            Rng::derive(7, "x", &[1]).next_u64(),
            Rng::derive(7, "y", &[1]).next_u64()
        );
    }

    #[test]
    fn uniform_and_normal_have_sane_moments() {
        let mut r = Rng::new(1);
        let n = 100_000;
        let mean_u: f64 = (0..n).map(|_| r.next_f32() as f64).sum::<f64>() / n as f64;
        assert!((mean_u - 0.5).abs() < 0.01);
        let xs: Vec<f64> = (0..n).map(|_| r.normal() as f64).collect();
        let m = xs.iter().sum::<f64>() / n as f64;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64;
        assert!(m.abs() < 0.02 && (v - 1.0).abs() < 0.02, "mean {m} var {v}");
        assert!((0..1000).all(|_| r.below(3) < 3));
    }
}
