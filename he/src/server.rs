//! Server side: weight precomputation, homomorphic convolution, re-randomisation and flooding.

use cryptonas_crypto::Csprng;
use fhe_math::rq::{dot_product, traits::TryConvertFrom, Poly, Representation};
use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

use crate::client::cbd_vec;
use crate::conv::{centre_weight, IntConv};
use crate::error::HeError;
use crate::params::{mul_mod, HeParams, B_E, STAT_SECURITY_BITS};
use crate::plan::StagePlan;
use crate::wire::{MasksMsg, OutCt, PublicKeyMsg, ResponseMsg};

/// The client's public key, expanded for use (`a` regenerated from its seed).
#[derive(Debug, Clone)]
pub struct PublicKey {
    k: u32,
    log_n: u32,
    a: Poly,
    b: Poly,
}

impl PublicKey {
    /// Expands a received public key.
    pub fn from_msg(params: &HeParams, msg: &PublicKeyMsg) -> Result<Self, HeError> {
        if msg.b.len() != params.moduli().len() * params.degree() {
            return Err(HeError::MessageShape {
                what: "public key coefficients",
                expected: params.moduli().len() * params.degree(),
                got: msg.b.len(),
            });
        }
        let a = Poly::random_from_seed(&params.ctx_top, Representation::Ntt, msg.seed);
        let b = Poly::try_convert_from(msg.b.clone(), &params.ctx_top, false, Representation::Ntt)?;
        Ok(PublicKey {
            k: params.k(),
            log_n: params.log_degree(),
            a,
            b,
        })
    }
}

/// Report of the noise analysis of one stage (see [`crate::HeParams`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseReport {
    /// log2 of the worst-case product plus re-randomisation noise, per coefficient.
    pub product_noise_bits: f64,
    /// Flooding width F.
    pub flood_bits: u32,
    /// Statistical distance exponent achieved by flooding: F − product_noise_bits.
    pub stat_security_bits: f64,
}

/// The server's precomputed stage: the plan and every weight polynomial in NTT form.
#[derive(Debug, Clone)]
pub struct ServerStage {
    params: HeParams,
    plan: StagePlan,
    /// Per term: `n_blocks · n_outb` weight polynomials, index `cb · n_outb + ob`.
    weights: Vec<Vec<Poly>>,
    noise: NoiseReport,
    /// 2^(64·j) mod q_i and 2^F mod q_i for flooding.
    pow64: Vec<Vec<u64>>,
    two_f: Vec<u64>,
}

impl ServerStage {
    /// Precomputes the stage `Σ_m IntConv_m(·)` with weights (OIHW, reduced mod 2^k), checking the
    /// noise budget: a stage whose weights the flooding could not hide is refused.
    pub fn new(params: &HeParams, terms: &[(IntConv, Vec<i64>)]) -> Result<Self, HeError> {
        let geoms: Vec<IntConv> = terms.iter().map(|(c, _)| *c).collect();
        let plan = StagePlan::new(params.degree(), &geoms)?;
        for (conv, w) in terms {
            if w.len() != conv.weight_len() {
                return Err(HeError::Length {
                    what: "weights",
                    expected: conv.weight_len(),
                    got: w.len(),
                });
            }
        }
        let n = params.degree();
        let k = params.k();
        let (o_n, _, _) = plan.output_shape();
        let wt = plan.wt();
        // Weight polynomial (term m, channel block cb, output block ob) as centred coefficients.
        let weight_coeffs = |m: usize, cb: usize, ob: usize| -> Vec<i64> {
            let t = &plan.terms[m];
            let w = &terms[m].1;
            let mut coeffs = vec![0i64; n];
            for s in 0..plan.k_s {
                let o = ob * plan.k_s + s;
                if o >= o_n {
                    break;
                }
                for cl in 0..t.c_b {
                    let cp = cb * t.c_b + cl;
                    if cp >= t.chans {
                        break;
                    }
                    for l in 0..t.kh {
                        for lp in 0..t.kw {
                            if let Some(wi) = t.weight_index(o, cp, l, lp) {
                                let coef = s * plan.l + plan.o_off - cl * t.p - l * wt - lp;
                                coeffs[coef] = centre_weight(w[wi], k);
                            }
                        }
                    }
                }
            }
            coeffs
        };
        let jobs: Vec<(usize, usize, usize)> = plan
            .terms
            .iter()
            .enumerate()
            .flat_map(|(m, t)| {
                (0..t.n_blocks).flat_map(move |cb| (0..plan.n_outb).map(move |ob| (m, cb, ob)))
            })
            .collect();
        // Noise check first (cheap), so that a refused stage costs no NTTs.
        let job_norms = par_map(jobs.len(), |j| {
            let (m, cb, ob) = jobs[j];
            weight_coeffs(m, cb, ob)
                .iter()
                .map(|&c| (c as f64).abs())
                .sum::<f64>()
        });
        let mut norms = vec![0f64; plan.n_outb];
        for (&(_, _, ob), nv) in jobs.iter().zip(&job_norms) {
            norms[ob] += nv;
        }
        let max_norm = norms.iter().copied().fold(0.0, f64::max);
        let product_noise = (B_E + 1.0) * max_norm + params.b_pk();
        let product_noise_bits = product_noise.log2();
        let flood_bits = params.flood_bits();
        if product_noise_bits > params.max_product_noise_bits() as f64 {
            return Err(HeError::NoiseBudget {
                needed_bits: product_noise_bits,
                available_bits: params.max_product_noise_bits(),
                flood_bits,
                stat_bits: STAT_SECURITY_BITS,
            });
        }
        let polys = par_map(jobs.len(), |j| {
            let (m, cb, ob) = jobs[j];
            // Variable-time NTT is fine here: it runs once per model, offline, and its timing is not
            // observable per query; products with these polynomials are branch-free (the
            // accumulation and reduction follow the ciphertext's constant-time flag).
            let mut poly = Poly::try_convert_from(
                &weight_coeffs(m, cb, ob)[..],
                &params.ctx_top,
                true,
                Representation::PowerBasis,
            )?;
            poly.change_representation(Representation::Ntt);
            Ok::<Poly, HeError>(poly)
        });
        let mut weights: Vec<Vec<Poly>> = plan
            .terms
            .iter()
            .map(|t| Vec::with_capacity(t.n_blocks * plan.n_outb))
            .collect();
        for (&(m, _, _), p) in jobs.iter().zip(polys) {
            weights[m].push(p?);
        }
        let limbs = (flood_bits as usize + 1).div_ceil(64);
        let pow64 = params
            .moduli()
            .iter()
            .map(|&q| {
                let base = ((1u128 << 64) % q as u128) as u64;
                let mut v = Vec::with_capacity(limbs);
                let mut acc = 1u64 % q;
                for _ in 0..limbs {
                    v.push(acc);
                    acc = mul_mod(acc, base, q);
                }
                v
            })
            .collect();
        let two_f = params
            .moduli()
            .iter()
            .map(|&q| {
                let mut acc = 1u64 % q;
                for _ in 0..flood_bits {
                    acc = (acc * 2) % q;
                }
                acc
            })
            .collect();
        Ok(ServerStage {
            params: params.clone(),
            plan,
            weights,
            noise: NoiseReport {
                product_noise_bits,
                flood_bits,
                stat_security_bits: flood_bits as f64 - product_noise_bits,
            },
            pow64,
            two_f,
        })
    }

    /// The packing plan (identical to the client's).
    pub fn plan(&self) -> &StagePlan {
        &self.plan
    }

    /// The stage's noise analysis.
    pub fn noise(&self) -> NoiseReport {
        self.noise
    }

    /// Memory held by the precomputed NTT weight polynomials, in bytes.
    pub fn weight_bytes(&self) -> usize {
        let polys: usize = self.weights.iter().map(Vec::len).sum();
        polys * self.params.degree() * self.params.moduli().len() * 8
    }

    /// `e1 + flood` in the power basis: e1 ← CBD(10), flood uniform in [−2^F, 2^F).
    fn flood_poly(&self, rng: &mut impl CryptoRng) -> Result<Poly, HeError> {
        let p = &self.params;
        let n = p.degree();
        let moduli = p.moduli();
        let f = p.flood_bits() as usize;
        let limbs = (f + 1).div_ceil(64);
        let top_bits = f + 1 - 64 * (limbs - 1);
        let top_mask = if top_bits == 64 {
            u64::MAX
        } else {
            (1u64 << top_bits) - 1
        };
        let e1 = cbd_vec(n, rng);
        let mut v = vec![0u64; moduli.len() * n];
        let mut limb = vec![0u64; limbs];
        for (j, &ej) in e1.iter().enumerate() {
            for (x, l) in limb.iter_mut().enumerate() {
                *l = rng.next_u64();
                if x + 1 == limbs {
                    *l &= top_mask;
                }
            }
            for (i, q) in p.enc_top.qs.iter().enumerate() {
                // (Σ limb·2^(64x)) − 2^F + e1 mod q; each product < 2^124, at most 3 limbs.
                let mut acc: u128 = 0;
                for (l, pw) in limb.iter().zip(&self.pow64[i]) {
                    acc += q.reduce(*l) as u128 * *pw as u128;
                }
                let e = if ej < 0 {
                    **q - (-ej) as u64
                } else {
                    ej as u64
                };
                acc += (**q - self.two_f[i]) as u128 + e as u128;
                v[i * n + j] = q.reduce_u128(acc);
            }
        }
        Ok(Poly::try_convert_from(
            v,
            &p.ctx_top,
            false,
            Representation::PowerBasis,
        )?)
    }

    /// Output ciphertext `oi` at the top level, power basis: `Σ ct·w` plus a public-key encryption of
    /// zero, plus (if `flood`) the flooding noise.
    pub(crate) fn product(
        &self,
        pk: &PublicKey,
        c0s: &[Poly],
        c1s: &[Poly],
        oi: usize,
        rng: &mut impl CryptoRng,
        flood: bool,
    ) -> Result<(Poly, Poly), HeError> {
        let p = &self.params;
        let plan = &self.plan;
        let n = p.degree();
        let (tile, ob) = plan.out_ct_tile_block(oi);
        let mut ins0 = Vec::new();
        let mut ins1 = Vec::new();
        let mut ws = Vec::new();
        for (m, t) in plan.terms.iter().enumerate() {
            for cb in 0..t.n_blocks {
                let idx = plan.in_offset[m] + tile * t.n_blocks + cb;
                ins0.push(&c0s[idx]);
                ins1.push(&c1s[idx]);
                ws.push(&self.weights[m][cb * plan.n_outb + ob]);
            }
        }
        let mut c0 = dot_product(ins0.into_iter(), ws.iter().copied())?;
        let mut c1 = dot_product(ins1.into_iter(), ws.iter().copied())?;
        // Re-randomise with a fresh public-key encryption of zero: u·(b, a) + (e1, e2).
        let mut u = Poly::try_convert_from(
            &cbd_vec(n, rng)[..],
            &p.ctx_top,
            false,
            Representation::PowerBasis,
        )?;
        u.change_representation(Representation::Ntt);
        c0 += &(&u * &pk.b);
        c1 += &(&u * &pk.a);
        c0.change_representation(Representation::PowerBasis);
        c1.change_representation(Representation::PowerBasis);
        if flood {
            c0 += &self.flood_poly(rng)?;
        } else {
            let e1 = cbd_vec(n, rng);
            c0 += &Poly::try_convert_from(&e1[..], &p.ctx_top, false, Representation::PowerBasis)?;
        }
        c1 += &Poly::try_convert_from(
            &cbd_vec(n, rng)[..],
            &p.ctx_top,
            false,
            Representation::PowerBasis,
        )?;
        Ok((c0, c1))
    }

    /// Expands the uploaded ciphertexts (c0 from the message, c1 from its seed).
    pub(crate) fn expand(&self, masks: &MasksMsg) -> Result<(Vec<Poly>, Vec<Poly>), HeError> {
        let p = &self.params;
        let n = p.degree();
        let n_top = p.moduli().len();
        if masks.cts.len() != self.plan.input_ciphertexts() {
            return Err(HeError::MessageShape {
                what: "mask ciphertexts",
                expected: self.plan.input_ciphertexts(),
                got: masks.cts.len(),
            });
        }
        let mut c0s = Vec::with_capacity(masks.cts.len());
        let mut c1s = Vec::with_capacity(masks.cts.len());
        for ct in &masks.cts {
            if ct.c0.len() != n_top * n {
                return Err(HeError::MessageShape {
                    what: "mask ciphertext coefficients",
                    expected: n_top * n,
                    got: ct.c0.len(),
                });
            }
            c0s.push(Poly::try_convert_from(
                ct.c0.clone(),
                &p.ctx_top,
                false,
                Representation::Ntt,
            )?);
            c1s.push(Poly::random_from_seed(
                &p.ctx_top,
                Representation::Ntt,
                ct.seed,
            ));
        }
        Ok((c0s, c1s))
    }

    /// Computes `Enc(Σ_m IntConv_m(r_m) − s)` for fresh random s, re-randomised and flooded, switched
    /// to the bottom level, with only the output coefficients of c0. Returns the server share s
    /// (O·H'·W' ring elements, CHW) and the response.
    ///
    /// The share is subtracted at the top level, before the modulus switch: the ciphertext that is
    /// switched (a public, deterministic map) then already encrypts the client's share `W·r − s`
    /// under the full flood, so everything the client receives is simulatable from its share up to
    /// the flood's 2^−40 per coefficient. Subtracting s after the switch would leave the switch's
    /// rounding and encoding carries of `W·r` covered only by the ≈ 2^12 flood left at the bottom.
    pub fn respond(
        &self,
        pk: &PublicKey,
        masks: &MasksMsg,
        rng: &mut impl CryptoRng,
    ) -> Result<(Vec<u64>, ResponseMsg), HeError> {
        let p = &self.params;
        let plan = &self.plan;
        check_params(p, pk.k, pk.log_n)?;
        let (c0s, c1s) = self.expand(masks)?;
        // One independent CSPRNG per output ciphertext, so the work can be spread over threads.
        let seeds: Vec<Zeroizing<[u8; 32]>> = (0..plan.output_ciphertexts())
            .map(|_| {
                let mut seed = Zeroizing::new([0u8; 32]);
                rng.fill_bytes(seed.as_mut());
                seed
            })
            .collect();
        let results = par_map(seeds.len(), |oi| {
            let (shares, c0, c1) = self.top_output(pk, &c0s, &c1s, oi, &seeds[oi])?;
            Ok::<_, HeError>((shares, self.switch_and_select(c0, c1, oi)?))
        });
        let mut share = vec![0u64; plan.output_len()];
        let mut out = Vec::with_capacity(plan.output_ciphertexts());
        for (r, map) in results.into_iter().zip(&plan.out_maps) {
            let (shares, ct) = r?;
            for (&(_, out_i), s) in map.iter().zip(shares.iter()) {
                share[out_i as usize] = *s;
            }
            out.push(ct);
        }
        Ok((share, ResponseMsg { cts: out }))
    }

    /// The top-level half of [`Self::respond`] for output ciphertext `oi`: the server's fresh
    /// shares (in `out_maps[oi]` order) and `(c0, c1)` at the top level in the power basis,
    /// re-randomised, flooded and already minus the encoding of the shares.
    pub(crate) fn top_output(
        &self,
        pk: &PublicKey,
        c0s: &[Poly],
        c1s: &[Poly],
        oi: usize,
        seed: &[u8; 32],
    ) -> Result<TopOutput, HeError> {
        let p = &self.params;
        let map = &self.plan.out_maps[oi];
        let mask = p.mask();
        let n = p.degree();
        let n_top = p.moduli().len();
        let mut rng = Csprng::from_seed(*seed);
        let (mut c0, c1) = self.product(pk, c0s, c1s, oi, &mut rng, true)?;
        // Encoding of the fresh shares at the output coefficients, zero elsewhere.
        let mut enc = Zeroizing::new(vec![0u64; n_top * n]);
        let mut shares = Zeroizing::new(Vec::with_capacity(map.len()));
        for &(coef, _) in map {
            let s = rng.next_u64() & mask;
            shares.push(s);
            for i in 0..n_top {
                enc[i * n + coef as usize] = p.enc_top.encode(s, i, mask);
            }
        }
        let mut s_poly =
            Poly::try_convert_from(&enc[..], &p.ctx_top, false, Representation::PowerBasis)?;
        c0 -= &s_poly;
        s_poly.zeroize();
        Ok((shares, c0, c1))
    }

    /// Switches one top-level output ciphertext down to the bottom primes and keeps c1 (NTT form)
    /// and the output coefficients of c0: a public, deterministic map.
    pub(crate) fn switch_and_select(
        &self,
        mut c0: Poly,
        mut c1: Poly,
        oi: usize,
    ) -> Result<OutCt, HeError> {
        let p = &self.params;
        let map = &self.plan.out_maps[oi];
        let low = p.low_moduli();
        for _ in low.len()..p.moduli().len() {
            c0.switch_down()?;
            c1.switch_down()?;
        }
        c1.change_representation(Representation::Ntt);
        let coeffs = c0.coefficients();
        let count = map.len();
        let mut vals = vec![0u64; low.len() * count];
        for (idx, &(coef, _)) in map.iter().enumerate() {
            for i in 0..low.len() {
                vals[i * count + idx] = coeffs[[i, coef as usize]];
            }
        }
        Ok(OutCt {
            c1: Vec::<u64>::from(&c1),
            count,
            c0: vals,
        })
    }
}

/// One output ciphertext at the top level: the server's shares (in `out_maps` order), c0, c1.
pub(crate) type TopOutput = (Zeroizing<Vec<u64>>, Poly, Poly);

/// `(0..n).map(f)`, on all cores natively (rayon), sequentially in WebAssembly.
#[cfg(not(target_arch = "wasm32"))]
fn par_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    use rayon::prelude::*;
    (0..n).into_par_iter().map(f).collect()
}

/// `(0..n).map(f)`, on all cores natively (rayon), sequentially in WebAssembly.
#[cfg(target_arch = "wasm32")]
fn par_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    (0..n).map(f).collect()
}

/// Refuses keys or messages made for other parameters.
pub(crate) fn check_params(p: &HeParams, k: u32, log_n: u32) -> Result<(), HeError> {
    if p.k() != k || p.log_degree() != log_n {
        return Err(HeError::ParamMismatch {
            k: p.k(),
            log_n: p.log_degree(),
            got_k: k,
            got_log_n: log_n,
        });
    }
    Ok(())
}
