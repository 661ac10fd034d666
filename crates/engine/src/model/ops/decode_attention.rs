//! Attention of one new position over the KV cache, in one kernel.
//!
//! A decode step's attention was nine candle ops per layer (scale, two batched matmuls, softmax,
//! reshapes and the copies between them), each allocating its output and some starting the
//! thread pool, for a few microseconds of arithmetic. This reads the cache where it lies.

use candle_core::{Storage, Tensor};
use rayon::prelude::*;

use super::softmax::softmax_row;
use super::{dot, fused, simd_run, with_data, SEQUENTIAL_BELOW};

/// `softmax(q·kᵀ·scale)·v` for one query position: `q: (1, H, 1, D)`, and the keys and values of
/// every position so far `k`, `v: (1, KV, Tk, D)` (`H` a multiple of `KV`; query head `h` reads
/// key/value head `h / (H / KV)`), which may be views of a larger cache buffer. Returns
/// `(1, H·D)`, the heads side by side, as the output projection takes them. `None` (nothing done)
/// off the CPU, for other dtypes, other shapes, views whose rows are not contiguous, and tensors
/// that track gradients: it has no backward pass, so training keeps the candle ops.
pub fn decode_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
) -> candle_core::Result<Option<Tensor>> {
    let (Ok((1, h, 1, d)), Ok((1, kv, tk, dk))) = (q.dims4(), k.dims4()) else {
        return Ok(None);
    };
    let applies = v.dims() == k.dims()
        && dk == d
        && kv > 0
        && h % kv == 0
        && tk > 0
        && d > 0
        && [q, k, v].iter().all(|t| fused(t) && !t.track_op())
        && [k, v].iter().all(|t| {
            let s = t.stride();
            s[3] == 1 && s[2] == d
        });
    if !applies {
        return Ok(None);
    }
    // How far apart the key/value heads lie in each buffer (a cache buffer's capacity × D).
    let (ks, vs) = (k.stride()[1], v.stride()[1]);
    let (k_guard, k_layout) = k.storage_and_layout();
    let (v_guard, v_layout) = v.storage_and_layout();
    let (Storage::Cpu(k_storage), Storage::Cpu(v_storage)) = (&*k_guard, &*v_guard) else {
        return Ok(None);
    };
    let k_all = &k_storage.as_slice::<f32>()?[k_layout.start_offset()..];
    let v_all = &v_storage.as_slice::<f32>()?[v_layout.start_offset()..];
    // The last head's rows end within each buffer (the views were checked by candle; this keeps
    // the slicing below from panicking on a layout it did not expect).
    let span = |stride: usize| (kv - 1) * stride + tk * d;
    if k_all.len() < span(ks) || v_all.len() < span(vs) {
        return Ok(None);
    }
    let rep = h / kv;
    let scale = scale as f32;
    let mut out = vec![0f32; h * d];
    with_data(q, |q| {
        let head = |(i, out): (usize, &mut [f32])| {
            let g = i / rep;
            let keys = &k_all[g * ks..g * ks + tk * d];
            let values = &v_all[g * vs..g * vs + tk * d];
            simd_run(OneQuery(&q[i * d..(i + 1) * d], keys, values, scale, out));
        };
        // Each element is read twice (key and value) with little arithmetic: the pool pays
        // only for long contexts.
        if h * tk * d < SEQUENTIAL_BELOW * 4 {
            out.chunks_mut(d).enumerate().for_each(head);
        } else {
            out.par_chunks_mut(d).enumerate().for_each(head);
        }
    })?;
    Tensor::from_vec(out, (1, h * d), q.device()).map(Some)
}

simd_kernel!(
    /// One head: `out = softmax(keys·(q·scale))·values` over the `keys.len() / q.len()`
    /// positions.
    OneQuery<'a>(
        q: &'a [f32],
        keys: &'a [f32],
        values: &'a [f32],
        scale: f32,
        out: &'a mut [f32],
    ) -> () {
        let d = q.len();
        let qs: Vec<f32> = q.iter().map(|&x| x * scale).collect();
        let scores: Vec<f32> = keys.chunks_exact(d).map(|k| dot(&qs, k)).collect();
        let mut p = vec![0f32; scores.len()];
        softmax_row(&mut p, &scores);
        out.fill(0.0);
        for (&p, v) in p.iter().zip(values.chunks_exact(d)) {
            for (o, &v) in out.iter_mut().zip(v) {
                *o += p * v;
            }
        }
    }
);

#[cfg(test)]
mod tests {
    use super::super::tests::{max_diff, rand};
    use super::*;

    /// The candle composition it replaces: scores, softmax, weighted values, heads side by side.
    fn composed(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Tensor {
        let (_, h, _, d) = q.dims4().unwrap();
        let kv = k.dim(1).unwrap();
        let rep = h / kv;
        let q = (q * scale).unwrap().reshape((1, kv, rep, d)).unwrap();
        let scores = q.matmul(&k.contiguous().unwrap().t().unwrap()).unwrap();
        let p = candle_nn::ops::softmax_last_dim(&scores).unwrap();
        let y = p.matmul(&v.contiguous().unwrap()).unwrap();
        assert_eq!(y.dims(), [1, kv, rep, d]);
        y.reshape((1, h * d)).unwrap()
    }

    #[test]
    fn matches_the_composition_over_a_cache_view() {
        // Grouped heads (6 queries over 2 key/value heads), keys and values the first 37 of 64
        // positions of a cache buffer, and a width that is not a multiple of sixteen.
        for (h, kv, d, len, cap) in [
            (6, 2, 20, 37, 64),
            (4, 4, 64, 1, 8),
            (12, 12, 64, 700, 1024),
        ] {
            let q = rand(&[1, h, 1, d], 1);
            let kbuf = rand(&[1, kv, cap, d], 2);
            let vbuf = rand(&[1, kv, cap, d], 3);
            let (k, v) = (
                kbuf.narrow(2, 0, len).unwrap(),
                vbuf.narrow(2, 0, len).unwrap(),
            );
            let scale = 1.0 / (d as f64).sqrt();
            let ours = decode_attention(&q, &k, &v, scale)
                .unwrap()
                .expect("applies");
            let want = composed(&q, &k, &v, scale);
            let diff = max_diff(&ours, &want);
            assert!(diff < 1e-5, "h {h} kv {kv} len {len}: {diff}");
        }
    }

    /// What the KV cache hands attention (views of its buffers) is taken as it is, and gives
    /// what the composition gives.
    #[test]
    fn reads_the_kv_cache_views() {
        use crate::model::layers::LayerKv;
        let mut slot = None;
        for (pos, seed) in [(0usize, 20u64), (1, 23), (2, 26)] {
            let (k, v) = (rand(&[1, 2, 1, 16], seed), rand(&[1, 2, 1, 16], seed + 1));
            let (keys, values) = LayerKv::append(&mut slot, &k, &v).unwrap();
            assert_eq!(keys.dims(), [1, 2, pos + 1, 16]);
            let q = rand(&[1, 4, 1, 16], seed + 2);
            let ours = decode_attention(&q, &keys, &values, 0.25)
                .unwrap()
                .expect("applies");
            let want = composed(&q, &keys, &values, 0.25);
            assert!(max_diff(&ours, &want) < 1e-5);
        }
    }

    #[test]
    fn declines_what_it_does_not_handle() {
        // Tracked tensors (training) keep the differentiable ops.
        let q = candle_core::Var::from_tensor(&rand(&[1, 2, 1, 8], 11)).unwrap();
        let k = rand(&[1, 2, 5, 8], 4);
        assert!(decode_attention(q.as_tensor(), &k, &k, 1.0)
            .unwrap()
            .is_none());
        let f64_q = rand(&[1, 2, 1, 8], 12)
            .to_dtype(candle_core::DType::F64)
            .unwrap();
        let f64_k = k.to_dtype(candle_core::DType::F64).unwrap();
        assert!(decode_attention(&f64_q, &f64_k, &f64_k, 1.0)
            .unwrap()
            .is_none());
        // Two queries, two sequences, heads that do not group, a transposed cache.
        assert!(decode_attention(&rand(&[1, 2, 2, 8], 5), &k, &k, 1.0)
            .unwrap()
            .is_none());
        let k2 = rand(&[2, 2, 5, 8], 6);
        assert!(decode_attention(&rand(&[2, 2, 1, 8], 7), &k2, &k2, 1.0)
            .unwrap()
            .is_none());
        assert!(decode_attention(&rand(&[1, 3, 1, 8], 8), &k, &k, 1.0)
            .unwrap()
            .is_none());
        let kt = rand(&[1, 2, 8, 5], 9).transpose(2, 3).unwrap();
        assert!(decode_attention(&rand(&[1, 2, 1, 8], 10), &kt, &kt, 1.0)
            .unwrap()
            .is_none());
    }
}
