//! Fixed-key AES and the correlation-robust hashes built on it.
//!
//! Guo, Katz, Wang, Yu: "Efficient and Secure Multiparty Computation from Fixed-Key Block Ciphers"
//! (IEEE S&P 2020). With π = AES under a public fixed key:
//! - `CR(x)    = π(x) ⊕ x`                       (§7.1, correlation robust)
//! - `CCR(x)   = π(σ(x)) ⊕ σ(x)`, σ(a‖b) = (a⊕b)‖a  (§7.2, circular correlation robust)
//! - `TCCR(i,x) = π(π(x) ⊕ i) ⊕ π(x)`           (§7.3, tweakable CCR: the half-gates hash)

use crate::Block;
use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use aes::Aes128;
use std::sync::OnceLock;

/// The public fixed AES key: an arbitrary public constant. (An earlier comment called it the first
/// 16 bytes of SHA-256("CryptoNAS fixed-key AES"); it is not — that hash begins `567df553…`. The
/// constant is kept because changing it changes every garbled table; the security of fixed-key
/// TCCR does not depend on how a public key was chosen, as long as it was fixed before use.)
pub const FIXED_KEY: [u8; 16] = [
    0x6c, 0x4d, 0x1e, 0x0a, 0x93, 0x27, 0x5b, 0xf1, 0x08, 0xc4, 0x3e, 0x77, 0xa2, 0x19, 0xd5, 0x60,
];

/// Which code computes π. All backends compute the same function (tests check every backend the
/// CPU supports against [`AesBackend::AesCrate`] bit for bit); they differ only in speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AesBackend {
    /// The `aes` crate (its own run-time AES-NI detection natively, its 64-bit fixsliced
    /// software AES in WebAssembly), with the half-gates hash computed in scratch-buffer passes:
    /// the code as shipped before the fused kernels, kept as the reference and the fallback.
    AesCrate,
    /// Constant-time bitsliced AES (fixslicing, no table lookups), eight blocks per call; TCCR
    /// keeps π(x) bitsliced between its two encryptions, the half-gates algebra runs in the
    /// reference's scratch-buffer passes. In WebAssembly with `simd128` the eight blocks sit in
    /// eight `v128` registers and this is the detected backend (unless `relaxed-simd` is on too);
    /// elsewhere the same code runs on a portable two-`u64` lane (slower than the `aes` crate
    /// there: it is never detected natively, only tested).
    Bitsliced,
    /// Constant-time vector-permute AES (Hamburg's technique: the S-box by nibble lookups in
    /// registers, `i8x16.swizzle`, never in memory), eight blocks per call; TCCR keeps π(x) in
    /// registers between its two encryptions. Detected in WebAssembly builds that enable
    /// `relaxed-simd` (`i8x16.relaxed_swizzle`: one `pshufb` in V8); the plain `simd128` build has
    /// it too but detects [`AesBackend::Bitsliced`] (its `i8x16.swizzle` is about as fast);
    /// natively a portable constant-time lane, tests only.
    VecPerm,
    /// Fused kernels on AES-NI, one block per 128-bit register (x86-64).
    AesNi,
    /// Fused kernels on VAES, two blocks per 256-bit register (x86-64 with AVX2 + VAES).
    Vaes256,
    /// Fused kernels on VAES, four blocks per 512-bit register (x86-64 with AVX-512F + VAES).
    Vaes512,
}

impl AesBackend {
    /// Every backend.
    pub const ALL: [AesBackend; 6] = [
        AesBackend::AesCrate,
        AesBackend::Bitsliced,
        AesBackend::VecPerm,
        AesBackend::AesNi,
        AesBackend::Vaes256,
        AesBackend::Vaes512,
    ];

    /// Whether this CPU can run the backend.
    pub fn is_supported(self) -> bool {
        match self {
            AesBackend::AesCrate | AesBackend::Bitsliced | AesBackend::VecPerm => true,
            #[cfg(target_arch = "x86_64")]
            _ => self.level().is_some_and(|l| l.available()),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The backends this CPU can run (for tests that must cover every path).
    pub fn supported() -> Vec<AesBackend> {
        Self::ALL.into_iter().filter(|b| b.is_supported()).collect()
    }

    /// The fastest supported backend, detected once per process: in WebAssembly with
    /// `relaxed-simd` [`AesBackend::VecPerm`], with `simd128` only [`AesBackend::Bitsliced`],
    /// natively the widest supported x86 kernel, else the `aes` crate.
    pub fn detected() -> AesBackend {
        static BEST: OnceLock<AesBackend> = OnceLock::new();
        *BEST.get_or_init(|| {
            if cfg!(all(target_arch = "wasm32", target_feature = "relaxed-simd")) {
                return AesBackend::VecPerm;
            }
            if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
                return AesBackend::Bitsliced;
            }
            [AesBackend::Vaes512, AesBackend::Vaes256, AesBackend::AesNi]
                .into_iter()
                .find(|b| b.is_supported())
                .unwrap_or(AesBackend::AesCrate)
        })
    }

    #[cfg(target_arch = "x86_64")]
    fn level(self) -> Option<crate::x86::Level> {
        use crate::x86::Level;
        match self {
            AesBackend::AesCrate | AesBackend::Bitsliced | AesBackend::VecPerm => None,
            AesBackend::AesNi => Some(Level::AesNi),
            AesBackend::Vaes256 => Some(Level::Vaes256),
            AesBackend::Vaes512 => Some(Level::Vaes512),
        }
    }
}

/// The lane type of the bitsliced backend on this target.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
type BitslicedLane = crate::wasm_simd::V128;
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
type BitslicedLane = crate::fixslice::U64x2;
/// The lane of the vector-permute backend on this target.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
type VecPermLane = crate::wasm_simd::Vp128;
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
type VecPermLane = crate::vperm::Portable;

/// The accelerated form of π: a capability for the kernels plus the expanded round keys.
#[derive(Clone)]
enum Fast {
    None,
    Bitsliced(Box<crate::fixslice::RoundKeys<BitslicedLane>>),
    VecPerm(Box<crate::vperm::RoundKeys<VecPermLane>>),
    #[cfg(target_arch = "x86_64")]
    X86(crate::x86::Kernels, crate::x86::RoundKeys),
}

/// AES-128 with a public key, used as a random permutation π.
///
/// [`FixedKeyAes::default`] is π under the fixed public key [`FIXED_KEY`]; [`FixedKeyAes::new`]
/// takes any other key (a per-session random key, see the gc crate's README). The key schedule is
/// wiped on drop, so the type can also hold a secret key (a PRF key).
#[derive(Clone)]
pub struct FixedKeyAes {
    cipher: Aes128,
    fast: Fast,
    backend: AesBackend,
}

impl Drop for FixedKeyAes {
    fn drop(&mut self) {
        match &mut self.fast {
            Fast::None => {}
            Fast::Bitsliced(rk) => zeroize::Zeroize::zeroize(&mut **rk),
            Fast::VecPerm(rk) => zeroize::Zeroize::zeroize(&mut **rk),
            #[cfg(target_arch = "x86_64")]
            Fast::X86(_, rk) => zeroize::Zeroize::zeroize(rk),
        }
    }
}

impl Default for FixedKeyAes {
    fn default() -> Self {
        Self::new(FIXED_KEY)
    }
}

impl std::fmt::Debug for FixedKeyAes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedKeyAes")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl FixedKeyAes {
    /// π under `key`, on the fastest backend of this CPU ([`AesBackend::detected`]).
    pub fn new(key: [u8; 16]) -> Self {
        Self::with_backend(key, AesBackend::detected()).unwrap_or_else(|| Self::reference(key))
    }

    /// π under `key` on a given backend, or `None` if this CPU cannot run it (tests and benches
    /// use it to cover every path and to compare against the reference).
    pub fn with_backend(key: [u8; 16], backend: AesBackend) -> Option<Self> {
        let fast = match backend {
            AesBackend::AesCrate => Fast::None,
            AesBackend::Bitsliced => Fast::Bitsliced(Box::new(crate::fixslice::key_schedule(&key))),
            AesBackend::VecPerm => Fast::VecPerm(Box::new(crate::vperm::key_schedule(&key))),
            #[cfg(target_arch = "x86_64")]
            _ => {
                let k = crate::x86::Kernels::new(backend.level()?)?;
                Fast::X86(k, k.expand_key(key))
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => return None,
        };
        Some(FixedKeyAes {
            cipher: Aes128::new(&Array(key)),
            fast,
            backend,
        })
    }

    fn reference(key: [u8; 16]) -> Self {
        FixedKeyAes {
            cipher: Aes128::new(&Array(key)),
            fast: Fast::None,
            backend: AesBackend::AesCrate,
        }
    }

    /// The backend this instance runs on.
    pub fn backend(&self) -> AesBackend {
        self.backend
    }

    /// π(x).
    #[inline]
    pub fn permute(&self, x: Block) -> Block {
        let mut a = Array(x.0);
        self.cipher.encrypt_block(&mut a);
        Block(a.0)
    }

    /// π applied in place to every block.
    #[inline]
    pub fn permute_many(&self, blocks: &mut [Block]) {
        match &self.fast {
            Fast::None => {
                let raw: &mut [[u8; 16]] = bytemuck::cast_slice_mut(blocks);
                self.cipher
                    .encrypt_blocks(Array::cast_slice_from_core_mut(raw));
            }
            Fast::Bitsliced(rk) => crate::fixslice::encrypt_many(rk, blocks),
            Fast::VecPerm(rk) => crate::vperm::encrypt_many(rk, blocks),
            #[cfg(target_arch = "x86_64")]
            Fast::X86(k, rk) => k.permute(rk, blocks),
        }
    }

    /// `CR(x) = π(x) ⊕ x`.
    #[inline]
    pub fn cr(&self, x: Block) -> Block {
        self.permute(x) ^ x
    }

    /// `CCR(x) = π(σ(x)) ⊕ σ(x)` with the orthomorphism σ(a‖b) = (a⊕b)‖a on 64-bit halves.
    #[inline]
    pub fn ccr(&self, x: Block) -> Block {
        let s = sigma(x);
        self.permute(s) ^ s
    }

    /// `TCCR(i, x) = π(π(x) ⊕ i) ⊕ π(x)`: the tweakable circular-correlation-robust hash.
    #[inline]
    pub fn tccr(&self, tweak: Block, x: Block) -> Block {
        let px = self.permute(x);
        self.permute(px ^ tweak) ^ px
    }

    /// `xs[j] ← TCCR(tweaks[j], xs[j])` for every j, in two wide AES passes.
    ///
    /// # Panics
    /// If the slices differ in length (a programming error, not an input error).
    pub fn tccr_many(&self, tweaks: &[Block], xs: &mut [Block]) {
        assert_eq!(tweaks.len(), xs.len(), "tccr_many: one tweak per block");
        match &self.fast {
            Fast::Bitsliced(rk) => return crate::fixslice::tccr_many(rk, xs, |j| tweaks[j]),
            Fast::VecPerm(rk) => return crate::vperm::tccr_many(rk, xs, |j| tweaks[j]),
            _ => {}
        }
        self.permute_many(xs);
        let mut second: Vec<Block> = xs.iter().zip(tweaks).map(|(p, t)| *p ^ *t).collect();
        self.permute_many(&mut second);
        for (x, s) in xs.iter_mut().zip(second) {
            *x ^= s;
        }
    }

    /// `x[j] ← TCCR(t[j], x[j])` on eight blocks: in registers on the backends that hash a batch
    /// that way (`Bitsliced`, `VecPerm`), else through [`FixedKeyAes::tccr_many`].
    #[inline]
    fn tccr8(&self, x: &mut [Block; 8], t: &[Block; 8]) {
        match &self.fast {
            Fast::Bitsliced(rk) => crate::fixslice::tccr8(rk, x, t),
            Fast::VecPerm(rk) => crate::vperm::tccr8(rk, x, t),
            _ => self.tccr_many(t, x),
        }
    }

    /// `ps[j] ← π(ps[j] ⊕ tweaks[j]) ⊕ ps[j]`: the second half of [`FixedKeyAes::tccr`], for
    /// blocks whose π is already known (`ps[j] = π(x_j)` gives `TCCR(tweaks[j], x_j)`). One label
    /// hashed under several tweaks (the arithmetic output's gate wire) then costs one π per tweak
    /// and one in all, instead of two per tweak.
    ///
    /// # Panics
    /// If the slices differ in length (a programming error, not an input error).
    pub fn tccr_many_permuted(&self, tweaks: &[Block], ps: &mut [Block]) {
        assert_eq!(
            tweaks.len(),
            ps.len(),
            "tccr_many_permuted: one tweak per block"
        );
        // π(x) gives x: the scratch is label material.
        let mut scratch = [Block::ZERO; 64];
        for (p, t) in ps
            .chunks_mut(scratch.len())
            .zip(tweaks.chunks(scratch.len()))
        {
            let s = &mut scratch[..p.len()];
            for ((s, p), t) in s.iter_mut().zip(p.iter()).zip(t) {
                *s = *p ^ *t;
            }
            self.permute_many(s);
            for (p, s) in p.iter_mut().zip(s.iter()) {
                *p ^= *s;
            }
        }
        zeroize::Zeroize::zeroize(&mut scratch);
    }

    /// Garbles `out.len()` independent half-gates AND gates (Zahur–Rosulek–Evans): gate `i` has
    /// input zero-labels `A = a[i]`, `B = b[i]` (little-endian `u128`, colours `pa`, `pb` = their
    /// least significant bits) and is hashed with `H(x, half) = TCCR(tweaks[i] ⊕ half, x)`:
    ///
    /// ```text
    /// T_G = H(A, 0) ⊕ H(A⊕Δ, 0) ⊕ pb·Δ            W_G = H(A, 0) ⊕ pa·T_G
    /// T_E = H(B, 1) ⊕ H(B⊕Δ, 1) ⊕ A                W_E = H(B, 1) ⊕ pb·(T_E ⊕ A)
    /// out[i] = W_G ⊕ W_E,  table[2i] = T_G,  table[2i+1] = T_E
    /// ```
    ///
    /// The gates may be one gate of many instances or many gates of one instance; callers keep
    /// bit 0 of every tweak clear and the tweaks distinct. On the x86 backends the two AES passes,
    /// the tweaks and the algebra run in registers, fused with the table store; on `Bitsliced`
    /// and `VecPerm` each batch of two gates is one eight-block TCCR call.
    ///
    /// # Panics
    /// If `tweaks`, `a`, `b` are not `out.len()` long or `table` is not `2 · out.len()` long.
    pub fn garble_and_batch(
        &self,
        delta: u128,
        tweaks: &[u128],
        a: &[u128],
        b: &[u128],
        out: &mut [u128],
        table: &mut [u128],
    ) {
        let n = out.len();
        assert!(
            tweaks.len() == n && a.len() == n && b.len() == n && table.len() == 2 * n,
            "garble_and_batch: tweaks, a, b, out of one length and a table twice as long"
        );
        match &self.fast {
            Fast::None => reference::garble_and(self, delta, tweaks, a, b, out, table),
            Fast::Bitsliced(_) | Fast::VecPerm(_) => {
                batched::garble_and(|x, t| self.tccr8(x, t), delta, tweaks, a, b, out, table)
            }
            #[cfg(target_arch = "x86_64")]
            Fast::X86(k, rk) => k.garble_and(rk, delta, tweaks, a, b, out, table),
        }
    }

    /// Evaluates `out.len()` half-gates AND gates on the active labels `a`, `b` (colours `sa`,
    /// `sb`) and the tables of [`FixedKeyAes::garble_and_batch`] (same tweaks):
    /// `out[i] = H(a, 0) ⊕ sa·T_G ⊕ H(b, 1) ⊕ sb·(T_E ⊕ a)`.
    ///
    /// # Panics
    /// If `tweaks`, `a`, `b` are not `out.len()` long or `table` is not `2 · out.len()` long.
    pub fn eval_and_batch(
        &self,
        tweaks: &[u128],
        a: &[u128],
        b: &[u128],
        out: &mut [u128],
        table: &[u128],
    ) {
        let n = out.len();
        assert!(
            tweaks.len() == n && a.len() == n && b.len() == n && table.len() == 2 * n,
            "eval_and_batch: tweaks, a, b, out of one length and a table twice as long"
        );
        match &self.fast {
            Fast::None => reference::eval_and(self, tweaks, a, b, out, table),
            Fast::Bitsliced(_) | Fast::VecPerm(_) => {
                batched::eval_and(|x, t| self.tccr8(x, t), tweaks, a, b, out, table)
            }
            #[cfg(target_arch = "x86_64")]
            Fast::X86(k, rk) => k.eval_and(rk, tweaks, a, b, out, table),
        }
    }
}

/// `x` where bit 0 of `bit` (a label's colour) is set, else 0, without branching: the half-gates
/// kernels' selection.
#[inline(always)]
fn sel(x: u128, bit: u128) -> u128 {
    x & (bit & 1).wrapping_neg()
}

/// The half-gates kernels over a backend that hashes eight blocks per call in registers (the
/// wasm backends): each batch's labels and tweaks go straight into one TCCR call and the algebra
/// runs on its outputs (no scratch passes, no tweak lookups by division).
mod batched {
    use super::sel;
    use crate::Block;

    /// Blocks per TCCR call.
    const N: usize = 8;

    #[inline(always)]
    fn block(x: u128) -> Block {
        Block::from_u128(x)
    }

    /// Hashes `N / G` blocks of each of `n` gates, `G` gates per TCCR call: `load(i, x, t)`
    /// writes gate `i`'s blocks and tweaks, `store(i, h)` reads their hashes.
    #[inline(always)]
    fn hash_gates<const G: usize>(
        n: usize,
        tccr8: impl Fn(&mut [Block; N], &[Block; N]),
        mut load: impl FnMut(usize, &mut [Block], &mut [Block]),
        mut store: impl FnMut(usize, &[Block]),
    ) {
        // Hashes of labels: wiped once, after the last group.
        let (mut x, mut t) = ([Block::ZERO; N], [Block::ZERO; N]);
        let full = n - n % G;
        for start in (0..full).step_by(G) {
            // `gates` is the constant `G` here: fixed-length loops once inlined.
            hash_group::<G>(start, G, &mut x, &mut t, &tccr8, &mut load, &mut store);
        }
        if full < n {
            hash_group::<G>(
                full,
                n - full,
                &mut x,
                &mut t,
                &tccr8,
                &mut load,
                &mut store,
            );
        }
        zeroize::Zeroize::zeroize(&mut x);
    }

    /// One TCCR call for the `gates ≤ G` gates from `start` (a short group is padded).
    #[inline(always)]
    fn hash_group<const G: usize>(
        start: usize,
        gates: usize,
        x: &mut [Block; N],
        t: &mut [Block; N],
        tccr8: &impl Fn(&mut [Block; N], &[Block; N]),
        load: &mut impl FnMut(usize, &mut [Block], &mut [Block]),
        store: &mut impl FnMut(usize, &[Block]),
    ) {
        let per = N / G;
        x[per * gates..].fill(Block::ZERO);
        t[per * gates..].fill(Block::ZERO);
        for q in 0..gates {
            let lane = per * q..per * (q + 1);
            load(start + q, &mut x[lane.clone()], &mut t[lane]);
        }
        tccr8(x, t);
        for q in 0..gates {
            store(start + q, &x[per * q..per * (q + 1)]);
        }
    }

    /// Four gates per call: `[A, B]` of each under tweaks `t ⊕ 0`, `t ⊕ 1`.
    pub(super) fn eval_and(
        tccr8: impl Fn(&mut [Block; N], &[Block; N]),
        tweaks: &[u128],
        a: &[u128],
        b: &[u128],
        out: &mut [u128],
        table: &[u128],
    ) {
        hash_gates::<{ N / 2 }>(
            out.len(),
            tccr8,
            |i, x, t| {
                x.copy_from_slice(&[a[i], b[i]].map(block));
                t.copy_from_slice(&[tweaks[i], tweaks[i] ^ 1].map(block));
            },
            |i, h| {
                let (ha, hb) = (h[0].to_u128(), h[1].to_u128());
                let (tg, te) = (table[2 * i], table[2 * i + 1]);
                out[i] = ha ^ sel(tg, a[i]) ^ hb ^ sel(te ^ a[i], b[i]);
            },
        );
    }

    /// Two gates per call: `[A, A⊕Δ]` under `t ⊕ 0`, `[B, B⊕Δ]` under `t ⊕ 1` of each.
    pub(super) fn garble_and(
        tccr8: impl Fn(&mut [Block; N], &[Block; N]),
        d: u128,
        tweaks: &[u128],
        a: &[u128],
        b: &[u128],
        out: &mut [u128],
        table: &mut [u128],
    ) {
        hash_gates::<{ N / 4 }>(
            out.len(),
            tccr8,
            |i, x, t| {
                let (a0, b0) = (a[i], b[i]);
                x.copy_from_slice(&[a0, a0 ^ d, b0, b0 ^ d].map(block));
                let (t0, t1) = (tweaks[i], tweaks[i] ^ 1);
                t.copy_from_slice(&[t0, t0, t1, t1].map(block));
            },
            |i, h| {
                let [ha0, ha1, hb0, hb1] = [0, 1, 2, 3].map(|j| h[j].to_u128());
                let (a0, b0) = (a[i], b[i]);
                let tg = ha0 ^ ha1 ^ sel(d, b0);
                let wg = ha0 ^ sel(tg, a0);
                let te = hb0 ^ hb1 ^ a0;
                let we = hb0 ^ sel(te ^ a0, b0);
                out[i] = wg ^ we;
                (table[2 * i], table[2 * i + 1]) = (tg, te);
            },
        );
    }
}

/// The half-gates chunk kernels as shipped before the fused ones: wide `permute_many` passes
/// through scratch buffers (the `aes` crate backend's kernels: the portable fallback and the
/// reference the others are tested against).
mod reference {
    use super::{sel, FixedKeyAes};

    /// Sub-chunk size of the scratch buffers.
    const SUB: usize = 64;

    thread_local! {
        /// Two scratch buffers of `4 · SUB` blocks, reused (zero-filling fresh ones per call cost
        /// more than the hash on small gates).
        static SCRATCH: std::cell::RefCell<Vec<u128>> = std::cell::RefCell::new(vec![0; 8 * SUB]);
    }

    /// Runs `f` on this thread's scratch buffers (fresh ones if they are in use up the stack).
    fn with_scratch(f: impl FnOnce(&mut [u128], &mut [u128])) {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut v) => {
                let (a, b) = v.split_at_mut(4 * SUB);
                f(a, b)
            }
            Err(_) => {
                let mut v = vec![0u128; 8 * SUB];
                let (a, b) = v.split_at_mut(4 * SUB);
                f(a, b)
            }
        })
    }

    /// π on little-endian `u128`s (a `u128`'s bytes in memory are its `Block`).
    fn permute(aes: &FixedKeyAes, xs: &mut [u128]) {
        aes.permute_many(bytemuck::cast_slice_mut(xs));
    }

    /// `xs ← TCCR(tweak, xs)` for `halves.len()` regions of `tweaks.len()` blocks; block `i` of
    /// region `r` gets the tweak `tweaks[i] ⊕ halves[r]`. Two wide passes and a scratch buffer.
    fn tccr_batch(
        aes: &FixedKeyAes,
        xs: &mut [u128],
        tmp: &mut [u128],
        tweaks: &[u128],
        halves: &[u128],
    ) {
        let cn = tweaks.len();
        permute(aes, xs);
        for (r, &half) in halves.iter().enumerate() {
            let (src, dst) = (&xs[r * cn..][..cn], &mut tmp[r * cn..][..cn]);
            for ((d, s), t) in dst.iter_mut().zip(src).zip(tweaks) {
                *d = *s ^ *t ^ half;
            }
        }
        permute(aes, tmp);
        for (x, t) in xs.iter_mut().zip(tmp.iter()) {
            *x ^= *t;
        }
    }

    pub(super) fn garble_and(
        aes: &FixedKeyAes,
        d: u128,
        tweaks: &[u128],
        a: &[u128],
        b: &[u128],
        out: &mut [u128],
        table: &mut [u128],
    ) {
        with_scratch(|buf, tmp| {
            for s in (0..out.len()).step_by(SUB) {
                let cn = SUB.min(out.len() - s);
                let (a, b, o) = (&a[s..s + cn], &b[s..s + cn], &mut out[s..s + cn]);
                let tab = &mut table[2 * s..2 * (s + cn)];
                let buf = &mut buf[..4 * cn];
                for i in 0..cn {
                    buf[i] = a[i];
                    buf[cn + i] = a[i] ^ d;
                    buf[2 * cn + i] = b[i];
                    buf[3 * cn + i] = b[i] ^ d;
                }
                let tw = &tweaks[s..s + cn];
                tccr_batch(aes, buf, &mut tmp[..4 * cn], tw, &[0, 0, 1, 1]);
                let (ha, hb) = buf.split_at(2 * cn);
                let (ha0, ha1) = ha.split_at(cn);
                let (hb0, hb1) = hb.split_at(cn);
                let hashes = ha0.iter().zip(ha1).zip(hb0.iter().zip(hb1));
                for (((t, o), ((&h_a0, &h_a1), (&h_b0, &h_b1))), (&a0, &b0)) in tab
                    .chunks_exact_mut(2)
                    .zip(o.iter_mut())
                    .zip(hashes)
                    .zip(a.iter().zip(b))
                {
                    let (pa, pb) = (a0 & 1, b0 & 1);
                    let tg = h_a0 ^ h_a1 ^ sel(d, pb);
                    let wg = h_a0 ^ sel(tg, pa);
                    let te = h_b0 ^ h_b1 ^ a0;
                    let we = h_b0 ^ sel(te ^ a0, pb);
                    *o = wg ^ we;
                    t[0] = tg;
                    t[1] = te;
                }
            }
        })
    }

    pub(super) fn eval_and(
        aes: &FixedKeyAes,
        tweaks: &[u128],
        a: &[u128],
        b: &[u128],
        out: &mut [u128],
        table: &[u128],
    ) {
        with_scratch(|buf, tmp| {
            for s in (0..out.len()).step_by(SUB) {
                let cn = SUB.min(out.len() - s);
                let (a, b, o) = (&a[s..s + cn], &b[s..s + cn], &mut out[s..s + cn]);
                let tab = &table[2 * s..2 * (s + cn)];
                let buf = &mut buf[..2 * cn];
                buf[..cn].copy_from_slice(a);
                buf[cn..].copy_from_slice(b);
                tccr_batch(aes, buf, &mut tmp[..2 * cn], &tweaks[s..s + cn], &[0, 1]);
                let (ha, hb) = buf.split_at(cn);
                for (((t, o), (&h_a, &h_b)), (&la, &lb)) in tab
                    .chunks_exact(2)
                    .zip(o.iter_mut())
                    .zip(ha.iter().zip(hb.iter()))
                    .zip(a.iter().zip(b))
                {
                    let wg = h_a ^ sel(t[0], la & 1);
                    let we = h_b ^ sel(t[1] ^ la, lb & 1);
                    *o = wg ^ we;
                }
            }
        })
    }
}

/// σ(a‖b) = (a⊕b)‖a, where a is the high and b the low 64-bit half: a linear orthomorphism.
#[inline]
fn sigma(x: Block) -> Block {
    let v = x.to_u128();
    let hi = v >> 64;
    let lo = v & u128::from(u64::MAX);
    Block::from_u128(((hi ^ lo) << 64) | hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS-197 Appendix C.1 known-answer vector for AES-128.
    #[test]
    fn aes128_fips197_vector() {
        let key = [
            0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
            0x0e, 0x0f,
        ];
        let pt = [
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        let ct = [
            0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
            0xc5, 0x5a,
        ];
        let pi = FixedKeyAes::new(key);
        assert_eq!(pi.permute(Block(pt)), Block(ct));
        let mut many = [Block(pt); 9];
        pi.permute_many(&mut many);
        assert!(many.iter().all(|b| *b == Block(ct)));
    }

    #[test]
    fn tccr_matches_definition_and_batch() {
        let pi = FixedKeyAes::default();
        let x = Block::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let i = Block::from_u128(42);
        let expect = pi.permute(pi.permute(x) ^ i) ^ pi.permute(x);
        assert_eq!(pi.tccr(i, x), expect);
        // Different tweaks give unrelated outputs.
        assert_ne!(pi.tccr(Block::from_u128(43), x), expect);
        let tweaks: Vec<Block> = (0..37u128).map(Block::from_u128).collect();
        let mut xs: Vec<Block> = (0..37u128).map(|j| Block::from_u128(j * 7919)).collect();
        let single: Vec<Block> = xs
            .iter()
            .zip(&tweaks)
            .map(|(x, t)| pi.tccr(*t, *x))
            .collect();
        pi.tccr_many(&tweaks, &mut xs);
        assert_eq!(xs, single);
    }

    /// `tccr_many_permuted` on π(x) is `tccr` on x, on every backend and every tail length.
    #[test]
    fn tccr_of_permuted_blocks_matches_tccr_on_every_backend() {
        let mut rng = crate::Csprng::from_seed([5; 32]);
        let key = rng.block().0;
        let reference = FixedKeyAes::with_backend(key, AesBackend::AesCrate).unwrap();
        for pi in all_backends(key) {
            for n in [0usize, 1, 7, 8, 9, 63, 64, 65, 200] {
                let (xs, tweaks) = (rng.blocks(n), rng.blocks(n));
                let mut ps = xs.clone();
                pi.permute_many(&mut ps);
                pi.tccr_many_permuted(&tweaks, &mut ps);
                let expect: Vec<Block> = xs
                    .iter()
                    .zip(&tweaks)
                    .map(|(x, t)| reference.tccr(*t, *x))
                    .collect();
                assert_eq!(ps, expect, "{:?} n={n}", pi.backend());
            }
        }
    }

    /// A backend instance for every backend this CPU runs (the reference included).
    fn all_backends(key: [u8; 16]) -> Vec<FixedKeyAes> {
        let v: Vec<FixedKeyAes> = AesBackend::supported()
            .into_iter()
            .map(|b| FixedKeyAes::with_backend(key, b).unwrap())
            .collect();
        eprintln!(
            "backends under test: {:?}",
            v.iter().map(|a| a.backend()).collect::<Vec<_>>()
        );
        v
    }

    #[test]
    fn detected_backend_is_supported_and_default_uses_it() {
        assert!(AesBackend::detected().is_supported());
        assert_eq!(FixedKeyAes::default().backend(), AesBackend::detected());
        for b in AesBackend::ALL {
            assert_eq!(
                FixedKeyAes::with_backend(FIXED_KEY, b).is_some(),
                b.is_supported()
            );
        }
    }

    #[test]
    fn every_backend_passes_fips197_and_matches_the_aes_crate() {
        let key = [
            0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
            0x0e, 0x0f,
        ];
        let pt = Block([
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ]);
        let ct = Block([
            0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
            0xc5, 0x5a,
        ]);
        let mut rng = crate::Csprng::from_seed([7; 32]);
        for pi in all_backends(key) {
            for n in [1usize, 3, 4, 7, 8, 9, 31, 32, 33, 64, 67] {
                let mut v = vec![Block(pt.0); n];
                pi.permute_many(&mut v);
                assert!(v.iter().all(|b| *b == ct), "{:?} n={n}", pi.backend());
            }
        }
        for _ in 0..8 {
            let key = rng.block().0;
            let reference = FixedKeyAes::with_backend(key, AesBackend::AesCrate).unwrap();
            for pi in all_backends(key) {
                for n in [0usize, 1, 2, 5, 16, 35, 100, 257] {
                    let xs = rng.blocks(n);
                    let mut got = xs.clone();
                    pi.permute_many(&mut got);
                    let expect: Vec<Block> = xs.iter().map(|x| reference.permute(*x)).collect();
                    assert_eq!(got, expect, "{:?} n={n}", pi.backend());
                }
            }
        }
    }

    /// The fused half-gates kernels against `tccr` and the ZRE15 formulas, on every backend, for
    /// chunk lengths that hit every tail, tweaks whose instance counter wraps, and Δ with lsb 1.
    #[test]
    fn half_gate_kernels_match_tccr_definition_on_every_backend() {
        let mut rng = crate::Csprng::from_seed([11; 32]);
        let key = rng.block().0;
        let reference = FixedKeyAes::with_backend(key, AesBackend::AesCrate).unwrap();
        let h = |t: &[u128], i: usize, half: u128, x: u128| -> u128 {
            reference
                .tccr(Block::from_u128(t[i] ^ half), Block::from_u128(x))
                .to_u128()
        };
        let sel = |x: u128, bit: u128| x & bit.wrapping_neg();
        for pi in all_backends(key) {
            for n in [
                0usize, 1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 31, 33, 63, 64, 65, 130,
            ] {
                let d = rng.block().to_u128() | 1;
                let t: &[u128] = &rng
                    .blocks(n)
                    .iter()
                    .map(|b| b.to_u128() & !1)
                    .collect::<Vec<_>>();
                let a: Vec<u128> = rng.blocks(n).iter().map(|b| b.to_u128()).collect();
                let b: Vec<u128> = rng.blocks(n).iter().map(|b| b.to_u128()).collect();
                let mut out = vec![0u128; n];
                let mut table = vec![0u128; 2 * n];
                pi.garble_and_batch(d, t, &a, &b, &mut out, &mut table);
                for i in 0..n {
                    let (pa, pb) = (a[i] & 1, b[i] & 1);
                    let tg = h(t, i, 0, a[i]) ^ h(t, i, 0, a[i] ^ d) ^ sel(d, pb);
                    let te = h(t, i, 1, b[i]) ^ h(t, i, 1, b[i] ^ d) ^ a[i];
                    let w = h(t, i, 0, a[i]) ^ sel(tg, pa) ^ h(t, i, 1, b[i]) ^ sel(te ^ a[i], pb);
                    assert_eq!(
                        (table[2 * i], table[2 * i + 1], out[i]),
                        (tg, te, w),
                        "{:?} n={n} i={i}",
                        pi.backend()
                    );
                }
                // Evaluation on random active labels yields W ⊕ (x∧y)·Δ.
                let xb: Vec<bool> = (0..n).map(|_| rng.bool()).collect();
                let yb: Vec<bool> = (0..n).map(|_| rng.bool()).collect();
                let aa: Vec<u128> = (0..n).map(|i| a[i] ^ sel(d, xb[i] as u128)).collect();
                let ab: Vec<u128> = (0..n).map(|i| b[i] ^ sel(d, yb[i] as u128)).collect();
                let mut got = vec![0u128; n];
                pi.eval_and_batch(t, &aa, &ab, &mut got, &table);
                for i in 0..n {
                    assert_eq!(
                        got[i],
                        out[i] ^ sel(d, (xb[i] & yb[i]) as u128),
                        "{:?} n={n} i={i}",
                        pi.backend()
                    );
                }
            }
        }
    }

    #[test]
    fn sigma_is_linear_orthomorphism() {
        let a = Block::from_u128(0xffff_0000_1234_5678_9abc_def0_0f0f_f0f0);
        let b = Block::from_u128(0x1111_2222_3333_4444_5555_6666_7777_8888);
        assert_eq!(sigma(a ^ b), sigma(a) ^ sigma(b));
        // σ(x) ⊕ x is also a permutation: check it is not the identity on a sample.
        assert_ne!(sigma(a) ^ a, Block::ZERO);
        let pi = FixedKeyAes::default();
        assert_eq!(pi.ccr(a), pi.permute(sigma(a)) ^ sigma(a));
        assert_eq!(pi.cr(a), pi.permute(a) ^ a);
    }
}
