//! x86-64 AES kernels: AES-NI (one block per register), VAES-256 (two) and VAES-512 (four).
//!
//! This is the only module of the workspace's crypto crates with `unsafe` code (see the README).
//! Every kernel is a `#[target_feature]` function whose whole body — round keys, blocks, tweaks,
//! the half-gates algebra and the table stores — is compiled with the features of its level, so
//! the intrinsics inline (the `aes` crate's run-time-detected backend loses half its time to load
//! and store helpers that do not). The three levels share one body ([`kernel_bodies`]) written
//! against a handful of per-level helpers (`load`, `store`, `enc`, `mask`, …).
//!
//! Soundness rests on two facts, checked where the `unsafe` blocks are:
//! - a kernel of level `L` is only entered through a [`Kernels`] value, which can only be built
//!   after run-time detection found every feature `L` needs;
//! - every pointer a kernel reads or writes is inside a slice whose length the safe wrapper checked
//!   (`W`-block groups never run past `n / W * W`, tails go to the narrower level).

use core::arch::x86_64::*;

/// AES-128 round keys (11 × 128 bits, little-endian blocks).
pub(crate) type RoundKeys = [u128; 11];

/// An instruction-set level of the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    /// AES-NI on 128-bit registers.
    AesNi,
    /// VAES on 256-bit registers (AVX2).
    Vaes256,
    /// VAES on 512-bit registers (AVX-512F).
    Vaes512,
}

impl Level {
    /// Whether this CPU has every feature the level's kernels are compiled with (std caches the
    /// CPUID answers, so this is a few loads).
    pub(crate) fn available(self) -> bool {
        let ni = is_x86_feature_detected!("aes") && is_x86_feature_detected!("sse2");
        let v256 = ni && is_x86_feature_detected!("vaes") && is_x86_feature_detected!("avx2");
        match self {
            Level::AesNi => ni,
            Level::Vaes256 => v256,
            Level::Vaes512 => v256 && is_x86_feature_detected!("avx512f"),
        }
    }
}

/// The kernels of one level, as a capability: a value exists only if the CPU supports the level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Kernels {
    level: Level,
}

impl Kernels {
    /// The kernels of `level`, if this CPU supports it.
    pub(crate) fn new(level: Level) -> Option<Self> {
        level.available().then_some(Kernels { level })
    }

    /// The AES-128 key schedule of `key` (AESKEYGENASSIST: no table lookups).
    pub(crate) fn expand_key(self, key: [u8; 16]) -> RoundKeys {
        // SAFETY: `self` exists only if AES-NI and SSE2 were detected (every level implies them).
        unsafe { expand_key(key) }
    }

    /// `xs[i] ← π(xs[i])`.
    pub(crate) fn permute(self, rk: &RoundKeys, xs: &mut [crate::Block]) {
        // SAFETY: the level's features were detected when `self` was built; each kernel touches
        // only `xs[..done]` with `done ≤ xs.len()`, and the tail is a subslice.
        let done = unsafe {
            match self.level {
                Level::Vaes512 => v512::permute(rk, xs),
                Level::Vaes256 => v256::permute(rk, xs),
                Level::AesNi => 0,
            }
        };
        // SAFETY: AES-NI is implied by every level; `ni::permute` handles any length.
        unsafe { ni::permute(rk, &mut xs[done..]) };
    }

    /// Garbles `out.len()` AND gates (see `FixedKeyAes::garble_and_batch`).
    ///
    /// # Panics
    /// If `tweaks`, `a`, `b` are not `out.len()` long or `table` is not `2 · out.len()` long.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn garble_and(
        self,
        rk: &RoundKeys,
        delta: u128,
        tweaks: &[u128],
        a: &[u128],
        b: &[u128],
        out: &mut [u128],
        table: &mut [u128],
    ) {
        let n = out.len();
        assert!(tweaks.len() == n && a.len() == n && b.len() == n && table.len() == 2 * n);
        // SAFETY: features detected when `self` was built; lengths checked above; each kernel
        // reads/writes instances `..done` only (`done ≤ n`), i.e. `a, b, out[..done]` and
        // `table[..2·done]`.
        let done = unsafe {
            match self.level {
                Level::Vaes512 => v512::garble_and(rk, delta, tweaks, a, b, out, table),
                Level::Vaes256 => v256::garble_and(rk, delta, tweaks, a, b, out, table),
                Level::AesNi => 0,
            }
        };
        // SAFETY: AES-NI is implied by every level; the subslices keep the length relations.
        unsafe {
            ni::garble_and(
                rk,
                delta,
                &tweaks[done..],
                &a[done..],
                &b[done..],
                &mut out[done..],
                &mut table[2 * done..],
            )
        };
    }

    /// Evaluates `out.len()` AND gates (see `FixedKeyAes::eval_and_batch`).
    ///
    /// # Panics
    /// If `tweaks`, `a`, `b` are not `out.len()` long or `table` is not `2 · out.len()` long.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn eval_and(
        self,
        rk: &RoundKeys,
        tweaks: &[u128],
        a: &[u128],
        b: &[u128],
        out: &mut [u128],
        table: &[u128],
    ) {
        let n = out.len();
        assert!(tweaks.len() == n && a.len() == n && b.len() == n && table.len() == 2 * n);
        // SAFETY: as in `garble_and`.
        let done = unsafe {
            match self.level {
                Level::Vaes512 => v512::eval_and(rk, tweaks, a, b, out, table),
                Level::Vaes256 => v256::eval_and(rk, tweaks, a, b, out, table),
                Level::AesNi => 0,
            }
        };
        // SAFETY: as in `garble_and`.
        unsafe {
            ni::eval_and(
                rk,
                &tweaks[done..],
                &a[done..],
                &b[done..],
                &mut out[done..],
                &table[2 * done..],
            )
        };
    }
}

/// The AES-128 key schedule with AESKEYGENASSIST.
///
/// # Safety
/// The CPU must support AES-NI and SSE2.
#[target_feature(enable = "aes,sse2")]
unsafe fn expand_key(key: [u8; 16]) -> RoundKeys {
    let mut rk = [0u128; 11];
    let mut k = _mm_set_epi64x(
        i64::from_le_bytes(key[8..].try_into().unwrap_or_default()),
        i64::from_le_bytes(key[..8].try_into().unwrap_or_default()),
    );
    rk[0] = to_u128(k);
    macro_rules! round {
        ($i:expr, $rcon:expr) => {
            let t = _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<$rcon>(k));
            k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
            k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
            k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
            k = _mm_xor_si128(k, t);
            rk[$i] = to_u128(k);
        };
    }
    round!(1, 0x01);
    round!(2, 0x02);
    round!(3, 0x04);
    round!(4, 0x08);
    round!(5, 0x10);
    round!(6, 0x20);
    round!(7, 0x40);
    round!(8, 0x80);
    round!(9, 0x1b);
    round!(10, 0x36);
    rk
}

/// A register as a little-endian integer.
#[target_feature(enable = "sse2")]
fn to_u128(v: __m128i) -> u128 {
    let mut out = 0u128;
    // SAFETY: `out` is 16 writable bytes; the store is unaligned.
    unsafe { _mm_storeu_si128((&raw mut out).cast(), v) };
    out
}

/// The kernels, written once against the per-level helpers `V`, `W`, `zero`, `load`, `store`,
/// `bcast`, `xor`, `and`, `mask`, `enc`, `enclast`, `interleave`, `deinterleave` of the
/// module it is expanded in (all compiled with the same features, so they inline).
///
/// Each kernel handles the first `n / W · W` items and returns that count.
macro_rules! kernel_bodies {
    ($feat:literal) => {
        /// The round keys, each broadcast to every lane.
        #[target_feature(enable = $feat)]
        #[inline]
        fn keys(rk: &super::RoundKeys) -> [V; 11] {
            let mut k = [zero(); 11];
            for (k, r) in k.iter_mut().zip(rk) {
                *k = bcast(*r);
            }
            k
        }

        /// AES-128 on every register of `x`: the `G · M` independent blocks interleave in the
        /// pipeline.
        #[target_feature(enable = $feat)]
        #[inline]
        fn aes<const G: usize, const M: usize>(k: &[V; 11], x: &mut [[V; M]; G]) {
            for g in x.iter_mut() {
                for v in g.iter_mut() {
                    *v = xor(*v, k[0]);
                }
            }
            for r in k.iter().take(10).skip(1) {
                for g in x.iter_mut() {
                    for v in g.iter_mut() {
                        *v = enc(*v, *r);
                    }
                }
            }
            for g in x.iter_mut() {
                for v in g.iter_mut() {
                    *v = enclast(*v, k[10]);
                }
            }
        }

        #[target_feature(enable = $feat)]
        pub(super) unsafe fn permute(rk: &super::RoundKeys, xs: &mut [crate::Block]) -> usize {
            const G: usize = 8;
            let k = keys(rk);
            let n = xs.len() / W * W;
            // Blocks are 16 bytes with alignment 1; all loads and stores are unaligned.
            let p = xs.as_mut_ptr().cast::<u128>();
            let mut i = 0;
            while i + G * W <= n {
                let mut x = [[zero(); G]];
                for (j, v) in x[0].iter_mut().enumerate() {
                    // SAFETY: `i + j·W + W ≤ i + G·W ≤ n ≤ xs.len()` blocks.
                    *v = unsafe { load(p.add(i + j * W)) };
                }
                aes(&k, &mut x);
                for (j, v) in x[0].iter().enumerate() {
                    // SAFETY: as for the load.
                    unsafe { store(p.add(i + j * W), *v) };
                }
                i += G * W;
            }
            while i < n {
                // SAFETY: `i + W ≤ n ≤ xs.len()` blocks (`n` is a multiple of `W`).
                let mut x = [[unsafe { load(p.add(i)) }]];
                aes(&k, &mut x);
                // SAFETY: as for the load.
                unsafe { store(p.add(i), x[0][0]) };
                i += W;
            }
            n
        }

        /// `G` groups of `W` garbled AND gates, starting at the pointers.
        ///
        /// # Safety
        /// `pw`, `pa`, `pb`, `po` valid for `G·W` blocks, `pt` for `2·G·W`.
        #[target_feature(enable = $feat)]
        #[inline]
        #[allow(clippy::too_many_arguments)]
        unsafe fn garble_groups<const G: usize>(
            k: &[V; 11],
            d: V,
            one: V,
            pw: *const u128,
            pa: *const u128,
            pb: *const u128,
            po: *mut u128,
            pt: *mut u128,
        ) {
            let mut tws = [zero(); G];
            let mut la = [zero(); G];
            let mut lb = [zero(); G];
            let mut x = [[zero(); 4]; G];
            for g in 0..G {
                // SAFETY: `g·W + W ≤ G·W`.
                let (a, b) = unsafe { (load(pa.add(g * W)), load(pb.add(g * W))) };
                la[g] = a;
                lb[g] = b;
                x[g] = [a, xor(a, d), b, xor(b, d)];
                // SAFETY: as above.
                tws[g] = unsafe { load(pw.add(g * W)) };
            }
            aes(k, &mut x);
            let px = x;
            for g in 0..G {
                let t1 = xor(tws[g], one);
                x[g][0] = xor(x[g][0], tws[g]);
                x[g][1] = xor(x[g][1], tws[g]);
                x[g][2] = xor(x[g][2], t1);
                x[g][3] = xor(x[g][3], t1);
            }
            aes(k, &mut x);
            for g in 0..G {
                let ha0 = xor(x[g][0], px[g][0]);
                let ha1 = xor(x[g][1], px[g][1]);
                let hb0 = xor(x[g][2], px[g][2]);
                let hb1 = xor(x[g][3], px[g][3]);
                let (ma, mb) = (mask(la[g]), mask(lb[g]));
                let tg = xor(xor(ha0, ha1), and(d, mb));
                let wg = xor(ha0, and(tg, ma));
                let te = xor(xor(hb0, hb1), la[g]);
                let we = xor(hb0, and(xor(te, la[g]), mb));
                let (s0, s1) = interleave(tg, te);
                // SAFETY: `g·W + W ≤ G·W` and `2·g·W + 2·W ≤ 2·G·W`.
                unsafe {
                    store(po.add(g * W), xor(wg, we));
                    store(pt.add(2 * g * W), s0);
                    store(pt.add(2 * g * W + W), s1);
                }
            }
        }

        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        pub(super) unsafe fn garble_and(
            rk: &super::RoundKeys,
            delta: u128,
            tweaks: &[u128],
            a: &[u128],
            b: &[u128],
            out: &mut [u128],
            table: &mut [u128],
        ) -> usize {
            const G: usize = 2;
            let n = out.len() / W * W;
            let k = keys(rk);
            let (d, one) = (bcast(delta), bcast(1));
            let pw = tweaks.as_ptr();
            let (pa, pb, po, pt) = (a.as_ptr(), b.as_ptr(), out.as_mut_ptr(), table.as_mut_ptr());
            let mut i = 0;
            // SAFETY: the caller checked `tweaks, a, b` ≥ `out.len()` and `table` ≥ `2·out.len()`
            // blocks; groups end at `i + G·W ≤ n` resp. `i + W ≤ n`.
            unsafe {
                while i + G * W <= n {
                    garble_groups::<G>(
                        &k,
                        d,
                        one,
                        pw.add(i),
                        pa.add(i),
                        pb.add(i),
                        po.add(i),
                        pt.add(2 * i),
                    );
                    i += G * W;
                }
                while i < n {
                    garble_groups::<1>(
                        &k,
                        d,
                        one,
                        pw.add(i),
                        pa.add(i),
                        pb.add(i),
                        po.add(i),
                        pt.add(2 * i),
                    );
                    i += W;
                }
            }
            n
        }

        /// `G` groups of `W` evaluated AND gates.
        ///
        /// # Safety
        /// `pw`, `pa`, `pb`, `po` valid for `G·W` blocks, `pt` for `2·G·W`.
        #[target_feature(enable = $feat)]
        #[inline]
        #[allow(clippy::too_many_arguments)]
        unsafe fn eval_groups<const G: usize>(
            k: &[V; 11],
            one: V,
            pw: *const u128,
            pa: *const u128,
            pb: *const u128,
            po: *mut u128,
            pt: *const u128,
        ) {
            let mut tws = [zero(); G];
            let mut x = [[zero(); 2]; G];
            for g in 0..G {
                // SAFETY: `g·W + W ≤ G·W`.
                x[g] = unsafe { [load(pa.add(g * W)), load(pb.add(g * W))] };
                // SAFETY: as above.
                tws[g] = unsafe { load(pw.add(g * W)) };
            }
            let labels = x;
            aes(k, &mut x);
            let px = x;
            for g in 0..G {
                x[g][0] = xor(x[g][0], tws[g]);
                x[g][1] = xor(x[g][1], xor(tws[g], one));
            }
            aes(k, &mut x);
            for g in 0..G {
                let ha = xor(x[g][0], px[g][0]);
                let hb = xor(x[g][1], px[g][1]);
                let [la, lb] = labels[g];
                // SAFETY: `2·g·W + 2·W ≤ 2·G·W`.
                let (tg, te) =
                    unsafe { deinterleave(load(pt.add(2 * g * W)), load(pt.add(2 * g * W + W))) };
                let wg = xor(ha, and(tg, mask(la)));
                let we = xor(hb, and(xor(te, la), mask(lb)));
                // SAFETY: `g·W + W ≤ G·W`.
                unsafe { store(po.add(g * W), xor(wg, we)) };
            }
        }

        #[target_feature(enable = $feat)]
        pub(super) unsafe fn eval_and(
            rk: &super::RoundKeys,
            tweaks: &[u128],
            a: &[u128],
            b: &[u128],
            out: &mut [u128],
            table: &[u128],
        ) -> usize {
            const G: usize = 4;
            let n = out.len() / W * W;
            let k = keys(rk);
            let one = bcast(1);
            let pw = tweaks.as_ptr();
            let (pa, pb, po, pt) = (a.as_ptr(), b.as_ptr(), out.as_mut_ptr(), table.as_ptr());
            let mut i = 0;
            // SAFETY: as in `garble_and`.
            unsafe {
                while i + G * W <= n {
                    eval_groups::<G>(
                        &k,
                        one,
                        pw.add(i),
                        pa.add(i),
                        pb.add(i),
                        po.add(i),
                        pt.add(2 * i),
                    );
                    i += G * W;
                }
                while i < n {
                    eval_groups::<1>(
                        &k,
                        one,
                        pw.add(i),
                        pa.add(i),
                        pb.add(i),
                        po.add(i),
                        pt.add(2 * i),
                    );
                    i += W;
                }
            }
            n
        }
    };
}

/// AES-NI: one block per `__m128i`.
mod ni {
    use core::arch::x86_64::*;
    type V = __m128i;
    const W: usize = 1;

    #[target_feature(enable = "aes,sse2")]
    #[inline]
    fn zero() -> V {
        _mm_setzero_si128()
    }
    /// # Safety
    /// `p` readable for `W` blocks.
    #[target_feature(enable = "aes,sse2")]
    #[inline]
    unsafe fn load(p: *const u128) -> V {
        // SAFETY: the caller's contract; unaligned load.
        unsafe { _mm_loadu_si128(p.cast()) }
    }
    /// # Safety
    /// `p` writable for `W` blocks.
    #[target_feature(enable = "aes,sse2")]
    #[inline]
    unsafe fn store(p: *mut u128, v: V) {
        // SAFETY: the caller's contract; unaligned store.
        unsafe { _mm_storeu_si128(p.cast(), v) }
    }
    #[target_feature(enable = "aes,sse2")]
    #[inline]
    fn bcast(x: u128) -> V {
        _mm_set_epi64x((x >> 64) as i64, x as i64)
    }
    #[target_feature(enable = "aes,sse2")]
    #[inline]
    fn xor(a: V, b: V) -> V {
        _mm_xor_si128(a, b)
    }
    #[target_feature(enable = "aes,sse2")]
    #[inline]
    fn and(a: V, b: V) -> V {
        _mm_and_si128(a, b)
    }
    /// All ones in each lane whose least significant bit is set, else zero.
    #[target_feature(enable = "aes,sse2")]
    #[inline]
    fn mask(l: V) -> V {
        let lsb = _mm_and_si128(_mm_unpacklo_epi64(l, l), _mm_set1_epi64x(1));
        _mm_sub_epi64(_mm_setzero_si128(), lsb)
    }
    #[target_feature(enable = "aes,sse2")]
    #[inline]
    fn enc(x: V, k: V) -> V {
        _mm_aesenc_si128(x, k)
    }
    #[target_feature(enable = "aes,sse2")]
    #[inline]
    fn enclast(x: V, k: V) -> V {
        _mm_aesenclast_si128(x, k)
    }
    /// Per-lane `(g, e)` to the table order `g0 e0 g1 e1 …`.
    #[target_feature(enable = "aes,sse2")]
    #[inline]
    fn interleave(g: V, e: V) -> (V, V) {
        (g, e)
    }
    #[target_feature(enable = "aes,sse2")]
    #[inline]
    fn deinterleave(v0: V, v1: V) -> (V, V) {
        (v0, v1)
    }

    kernel_bodies!("aes,sse2");
}

/// VAES on 256-bit registers: two blocks per `__m256i`.
mod v256 {
    use core::arch::x86_64::*;
    type V = __m256i;
    const W: usize = 2;

    #[target_feature(enable = "aes,avx2,vaes")]
    #[inline]
    fn zero() -> V {
        _mm256_setzero_si256()
    }
    /// # Safety
    /// `p` readable for `W` blocks.
    #[target_feature(enable = "aes,avx2,vaes")]
    #[inline]
    unsafe fn load(p: *const u128) -> V {
        // SAFETY: the caller's contract; unaligned load.
        unsafe { _mm256_loadu_si256(p.cast()) }
    }
    /// # Safety
    /// `p` writable for `W` blocks.
    #[target_feature(enable = "aes,avx2,vaes")]
    #[inline]
    unsafe fn store(p: *mut u128, v: V) {
        // SAFETY: the caller's contract; unaligned store.
        unsafe { _mm256_storeu_si256(p.cast(), v) }
    }
    #[target_feature(enable = "aes,avx2,vaes")]
    #[inline]
    fn bcast(x: u128) -> V {
        _mm256_broadcastsi128_si256(_mm_set_epi64x((x >> 64) as i64, x as i64))
    }
    #[target_feature(enable = "aes,avx2,vaes")]
    #[inline]
    fn xor(a: V, b: V) -> V {
        _mm256_xor_si256(a, b)
    }
    #[target_feature(enable = "aes,avx2,vaes")]
    #[inline]
    fn and(a: V, b: V) -> V {
        _mm256_and_si256(a, b)
    }
    /// All ones in each lane whose least significant bit is set, else zero.
    #[target_feature(enable = "aes,avx2,vaes")]
    #[inline]
    fn mask(l: V) -> V {
        let lsb = _mm256_and_si256(_mm256_unpacklo_epi64(l, l), _mm256_set1_epi64x(1));
        _mm256_sub_epi64(_mm256_setzero_si256(), lsb)
    }
    #[target_feature(enable = "aes,avx2,vaes")]
    #[inline]
    fn enc(x: V, k: V) -> V {
        _mm256_aesenc_epi128(x, k)
    }
    #[target_feature(enable = "aes,avx2,vaes")]
    #[inline]
    fn enclast(x: V, k: V) -> V {
        _mm256_aesenclast_epi128(x, k)
    }
    /// `[g0 g1], [e0 e1]` → `[g0 e0], [g1 e1]`.
    #[target_feature(enable = "aes,avx2,vaes")]
    #[inline]
    fn interleave(g: V, e: V) -> (V, V) {
        (
            _mm256_permute2x128_si256::<0x20>(g, e),
            _mm256_permute2x128_si256::<0x31>(g, e),
        )
    }
    /// `[g0 e0], [g1 e1]` → `[g0 g1], [e0 e1]`.
    #[target_feature(enable = "aes,avx2,vaes")]
    #[inline]
    fn deinterleave(v0: V, v1: V) -> (V, V) {
        (
            _mm256_permute2x128_si256::<0x20>(v0, v1),
            _mm256_permute2x128_si256::<0x31>(v0, v1),
        )
    }

    kernel_bodies!("aes,avx2,vaes");
}

/// VAES on 512-bit registers: four blocks per `__m512i`.
mod v512 {
    use core::arch::x86_64::*;
    type V = __m512i;
    const W: usize = 4;

    #[target_feature(enable = "aes,avx2,avx512f,vaes")]
    #[inline]
    fn zero() -> V {
        _mm512_setzero_si512()
    }
    /// # Safety
    /// `p` readable for `W` blocks.
    #[target_feature(enable = "aes,avx2,avx512f,vaes")]
    #[inline]
    unsafe fn load(p: *const u128) -> V {
        // SAFETY: the caller's contract; unaligned load.
        unsafe { _mm512_loadu_si512(p.cast()) }
    }
    /// # Safety
    /// `p` writable for `W` blocks.
    #[target_feature(enable = "aes,avx2,avx512f,vaes")]
    #[inline]
    unsafe fn store(p: *mut u128, v: V) {
        // SAFETY: the caller's contract; unaligned store.
        unsafe { _mm512_storeu_si512(p.cast(), v) }
    }
    #[target_feature(enable = "aes,avx2,avx512f,vaes")]
    #[inline]
    fn bcast(x: u128) -> V {
        _mm512_broadcast_i32x4(_mm_set_epi64x((x >> 64) as i64, x as i64))
    }
    #[target_feature(enable = "aes,avx2,avx512f,vaes")]
    #[inline]
    fn xor(a: V, b: V) -> V {
        _mm512_xor_si512(a, b)
    }
    #[target_feature(enable = "aes,avx2,avx512f,vaes")]
    #[inline]
    fn and(a: V, b: V) -> V {
        _mm512_and_si512(a, b)
    }
    /// All ones in each lane whose least significant bit is set, else zero.
    #[target_feature(enable = "aes,avx2,avx512f,vaes")]
    #[inline]
    fn mask(l: V) -> V {
        let lsb = _mm512_and_si512(_mm512_unpacklo_epi64(l, l), _mm512_set1_epi64(1));
        _mm512_sub_epi64(_mm512_setzero_si512(), lsb)
    }
    #[target_feature(enable = "aes,avx2,avx512f,vaes")]
    #[inline]
    fn enc(x: V, k: V) -> V {
        _mm512_aesenc_epi128(x, k)
    }
    #[target_feature(enable = "aes,avx2,avx512f,vaes")]
    #[inline]
    fn enclast(x: V, k: V) -> V {
        _mm512_aesenclast_epi128(x, k)
    }
    /// `[g0 g1 g2 g3], [e0 e1 e2 e3]` → `[g0 e0 g1 e1], [g2 e2 g3 e3]` (64-bit word indices; bit
    /// 3 picks the second operand).
    #[target_feature(enable = "aes,avx2,avx512f,vaes")]
    #[inline]
    fn interleave(g: V, e: V) -> (V, V) {
        let lo = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
        let hi = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
        (
            _mm512_permutex2var_epi64(g, lo, e),
            _mm512_permutex2var_epi64(g, hi, e),
        )
    }
    /// `[g0 e0 g1 e1], [g2 e2 g3 e3]` → `[g0 g1 g2 g3], [e0 e1 e2 e3]`.
    #[target_feature(enable = "aes,avx2,avx512f,vaes")]
    #[inline]
    fn deinterleave(v0: V, v1: V) -> (V, V) {
        let gs = _mm512_set_epi64(13, 12, 9, 8, 5, 4, 1, 0);
        let es = _mm512_set_epi64(15, 14, 11, 10, 7, 6, 3, 2);
        (
            _mm512_permutex2var_epi64(v0, gs, v1),
            _mm512_permutex2var_epi64(v0, es, v1),
        )
    }

    kernel_bodies!("aes,avx2,avx512f,vaes");
}
