//! Client side: key generation, mask encryption, share decryption (builds for wasm32).

use std::sync::Arc;

use fhe_math::rq::{traits::TryConvertFrom, Poly, Representation};
use rand_core::CryptoRng;
use zeroize::Zeroize;

use crate::conv::IntConv;
use crate::error::HeError;
use crate::params::{HeParams, CBD_VARIANCE};
use crate::plan::StagePlan;
use crate::server::check_params;
use crate::wire::{MasksMsg, PublicKeyMsg, ResponseMsg, SeededCt};

/// One sample of the centred binomial distribution with variance 10 (20 coin pairs), constant time.
pub(crate) fn cbd(rng: &mut impl CryptoRng) -> i64 {
    let r = rng.next_u64();
    let m = (1u64 << (2 * CBD_VARIANCE)) - 1;
    (r & m).count_ones() as i64 - ((r >> (2 * CBD_VARIANCE)) & m).count_ones() as i64
}

pub(crate) fn cbd_vec(n: usize, rng: &mut impl CryptoRng) -> Vec<i64> {
    (0..n).map(|_| cbd(rng)).collect()
}

/// The client's BFV secret key and the public key derived from it.
pub struct ClientKeys {
    params: HeParams,
    s: Vec<i64>,
    pub(crate) s_top: Poly,
    pub(crate) s_low: Poly,
    pk: PublicKeyMsg,
}

impl std::fmt::Debug for ClientKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKeys")
            .field("k", &self.params.k())
            .field("n", &self.params.degree())
            .finish_non_exhaustive()
    }
}

impl Drop for ClientKeys {
    fn drop(&mut self) {
        self.s.zeroize();
        self.s_top.zeroize();
        self.s_low.zeroize();
    }
}

impl ClientKeys {
    /// Samples a secret key s ← CBD(10)^N (resampled until ‖s‖₂² ≤ 20·N, which the switching bound
    /// of [`crate::HeParams`] assumes) and the public key `(a, −a·s + e)` with `a` from a seed.
    pub fn generate(params: &HeParams, rng: &mut impl CryptoRng) -> Result<Self, HeError> {
        let n = params.degree();
        let s = loop {
            let s = cbd_vec(n, rng);
            let norm2: i64 = s.iter().map(|v| v * v).sum();
            if norm2 <= 2 * CBD_VARIANCE as i64 * n as i64 {
                break s;
            }
        };
        let mut s_top =
            Poly::try_convert_from(&s[..], &params.ctx_top, false, Representation::PowerBasis)?;
        s_top.change_representation(Representation::Ntt);
        let mut s_low =
            Poly::try_convert_from(&s[..], &params.ctx_low, false, Representation::PowerBasis)?;
        s_low.change_representation(Representation::Ntt);
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let a = Poly::random_from_seed(&params.ctx_top, Representation::Ntt, seed);
        let mut e = Poly::try_convert_from(
            &cbd_vec(n, rng)[..],
            &params.ctx_top,
            false,
            Representation::PowerBasis,
        )?;
        e.change_representation(Representation::Ntt);
        let b = &e - &(&a * &s_top);
        Ok(ClientKeys {
            params: params.clone(),
            s,
            s_top,
            s_low,
            pk: PublicKeyMsg {
                seed,
                b: Vec::<u64>::from(&b),
            },
        })
    }

    /// The public key to send to the server (once per session).
    pub fn public_key(&self) -> &PublicKeyMsg {
        &self.pk
    }

    /// The parameters the keys were made for.
    pub fn params(&self) -> &HeParams {
        &self.params
    }

    /// Secret-key encryption of a coefficient vector (ring elements, length ≤ N given as a sparse
    /// list of (coefficient, value)), seeded so that only c0 travels.
    fn encrypt_sparse(
        &self,
        entries: impl Iterator<Item = (usize, u64)>,
        rng: &mut impl CryptoRng,
    ) -> Result<SeededCt, HeError> {
        let p = &self.params;
        let n = p.degree();
        let moduli = p.moduli();
        let mask = p.mask();
        // c0 = Δ·m + e − a·s, with Δ·m + e assembled in the power basis (one NTT per prime).
        let e = cbd_vec(n, rng);
        let qs = &p.enc_top.qs;
        let mut v: Vec<u64> = Vec::with_capacity(moduli.len() * n);
        for q in qs {
            v.extend(q.reduce_vec_i64(&e));
        }
        for (coef, m) in entries {
            for (i, q) in qs.iter().enumerate() {
                let x = &mut v[i * n + coef];
                *x = q.add(*x, p.enc_top.encode(m, i, mask));
            }
        }
        let mut c0 = Poly::try_convert_from(v, &p.ctx_top, false, Representation::PowerBasis)?;
        c0.change_representation(Representation::Ntt);
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let a = Poly::random_from_seed(&p.ctx_top, Representation::Ntt, seed);
        c0 -= &(&a * &self.s_top);
        Ok(SeededCt {
            seed,
            c0: Vec::<u64>::from(&c0),
        })
    }
}

/// The client's view of one stage: the public packing plan.
#[derive(Debug, Clone)]
pub struct ClientStage {
    k: u32,
    plan: Arc<StagePlan>,
}

/// What the client keeps between sending its masks and receiving the response.
#[derive(Debug, Clone)]
pub struct ClientState {
    k: u32,
    plan: Arc<StagePlan>,
}

impl ClientStage {
    /// Plans the stage `Z = Σ_m IntConv_m(src_m)` (geometry only; weights stay with the server).
    pub fn new(params: &HeParams, terms: &[IntConv]) -> Result<Self, HeError> {
        Ok(ClientStage {
            k: params.k(),
            plan: Arc::new(StagePlan::new(params.degree(), terms)?),
        })
    }

    /// The packing plan.
    pub fn plan(&self) -> &StagePlan {
        &self.plan
    }

    /// Encrypts the masks `r_m` of the stage's sources (one slice per term, CHW ring elements).
    pub fn encrypt_masks(
        &self,
        keys: &ClientKeys,
        masks: &[&[u64]],
        rng: &mut impl CryptoRng,
    ) -> Result<(ClientState, MasksMsg), HeError> {
        let mut cts = Vec::with_capacity(self.plan.input_ciphertexts());
        let state = self.encrypt_each(keys, masks, rng, |ct| cts.push(ct))?;
        Ok((state, MasksMsg { cts }))
    }

    /// [`ClientStage::encrypt_masks`] written straight into `out` (appended: `out` may hold a
    /// frame header), exactly the bytes of [`MasksMsg::to_bytes`]: each ciphertext is encoded as
    /// soon as it is made, so the stage's ciphertexts are never all in memory besides `out`. On
    /// error `out` is left as it was.
    pub fn encrypt_masks_into(
        &self,
        keys: &ClientKeys,
        masks: &[&[u64]],
        rng: &mut impl CryptoRng,
        out: &mut Vec<u8>,
    ) -> Result<ClientState, HeError> {
        let p = &keys.params;
        let count = self.plan.input_ciphertexts();
        let at = out.len();
        out.reserve_exact(MasksMsg::byte_len(p, count));
        MasksMsg::write_head(out, p, count);
        let state = self.encrypt_each(keys, masks, rng, |ct| MasksMsg::write_ct(out, p, &ct));
        if state.is_err() {
            out.truncate(at);
        }
        state
    }

    /// Checks the masks and encrypts them ciphertext by ciphertext, in plan order.
    fn encrypt_each(
        &self,
        keys: &ClientKeys,
        masks: &[&[u64]],
        rng: &mut impl CryptoRng,
        mut each: impl FnMut(SeededCt),
    ) -> Result<ClientState, HeError> {
        let plan = &self.plan;
        check_params(&keys.params, self.k, plan.degree().trailing_zeros())?;
        if masks.len() != plan.terms.len() {
            return Err(HeError::Length {
                what: "mask tensors",
                expected: plan.terms.len(),
                got: masks.len(),
            });
        }
        let mask = keys.params.mask();
        for (t, m) in plan.terms.iter().zip(masks) {
            if m.len() != t.conv.input_len() {
                return Err(HeError::Length {
                    what: "mask",
                    expected: t.conv.input_len(),
                    got: m.len(),
                });
            }
            if let Some(index) = m.iter().position(|&v| v & !mask != 0) {
                return Err(HeError::RingValue {
                    what: "mask",
                    index,
                    k: keys.params.k(),
                });
            }
        }
        for (m, src) in masks.iter().enumerate() {
            let start = plan.in_offset[m];
            let end = plan
                .in_offset
                .get(m + 1)
                .copied()
                .unwrap_or(plan.in_maps.len());
            for map in &plan.in_maps[start..end] {
                let entries = map.iter().map(|&(c, i)| (c as usize, src[i as usize]));
                each(keys.encrypt_sparse(entries, rng)?);
            }
        }
        Ok(ClientState {
            k: self.k,
            plan: self.plan.clone(),
        })
    }
}

impl ClientState {
    /// Decrypts the client's share `Σ_m IntConv_m(r_m) − s` (O·H'·W' ring elements, CHW).
    pub fn decrypt(&self, keys: &ClientKeys, resp: &ResponseMsg) -> Result<Vec<u64>, HeError> {
        check_params(&keys.params, self.k, self.plan.degree().trailing_zeros())?;
        self.check_count(resp.cts.len())?;
        let mut share = vec![0u64; self.plan.output_len()];
        for (ct, map) in resp.cts.iter().zip(&self.plan.out_maps) {
            self.decrypt_one(keys, ct, map, &mut share)?;
        }
        Ok(share)
    }

    /// [`ClientState::decrypt`] of a [`ResponseMsg`]'s bytes, a ciphertext at a time as it is
    /// parsed: besides the bytes and the share, one ciphertext is in memory.
    pub fn decrypt_bytes(&self, keys: &ClientKeys, bytes: &[u8]) -> Result<Vec<u64>, HeError> {
        check_params(&keys.params, self.k, self.plan.degree().trailing_zeros())?;
        let mut share = vec![0u64; self.plan.output_len()];
        let mut maps = self.plan.out_maps.iter();
        let count = ResponseMsg::read_each(&keys.params, bytes, |count, ct| {
            self.check_count(count)?;
            let map = maps.next().expect("as many ciphertexts as maps: checked");
            self.decrypt_one(keys, &ct, map, &mut share)
        })?;
        self.check_count(count)?;
        Ok(share)
    }

    /// The response must hold one ciphertext per output map of the plan.
    fn check_count(&self, count: usize) -> Result<(), HeError> {
        if count != self.plan.out_maps.len() {
            return Err(HeError::MessageShape {
                what: "response ciphertexts",
                expected: self.plan.out_maps.len(),
                got: count,
            });
        }
        Ok(())
    }

    /// Decrypts one response ciphertext into its outputs (`map`: coefficient → output index).
    fn decrypt_one(
        &self,
        keys: &ClientKeys,
        ct: &crate::wire::OutCt,
        map: &[(u32, u32)],
        out: &mut [u64],
    ) -> Result<(), HeError> {
        let p = &keys.params;
        let n = p.degree();
        let low = p.low_moduli();
        if ct.count != map.len()
            || ct.c0.len() != low.len() * ct.count
            || ct.c1.len() != low.len() * n
        {
            return Err(HeError::MessageShape {
                what: "response coefficients",
                expected: map.len(),
                got: ct.count,
            });
        }
        let c1 = Poly::try_convert_from(ct.c1.clone(), &p.ctx_low, false, Representation::Ntt)?;
        let mut phase = &c1 * &keys.s_low;
        phase.change_representation(Representation::PowerBasis);
        let coeffs = phase.coefficients();
        let mut res = vec![0u64; low.len()];
        for (idx, &(coef, out_i)) in map.iter().enumerate() {
            for (i, q) in p.enc_low.qs.iter().enumerate() {
                res[i] = q.add(coeffs[[i, coef as usize]], ct.c0[i * ct.count + idx]);
            }
            out[out_i as usize] = p.decode_low(&res);
        }
        Ok(())
    }
}
