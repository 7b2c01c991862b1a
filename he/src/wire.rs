//! Sans-IO messages and their compact, strictly validated byte format.
//!
//! Every message starts with an 8-byte header `b"CNHE", version, kind, k, log2 N`; counts are u32
//! little endian; residues mod each prime q_i are bit-packed with ⌈log2 q_i⌉ bits, prime by prime
//! (bottom prime first). Parsing checks the header against our parameters, every count against the
//! bytes left, every residue against its prime and that nothing trails: any deviation is a
//! [`HeError::Malformed`] or [`HeError::ParamMismatch`], never a panic.

use crate::error::HeError;
use crate::params::HeParams;

const MAGIC: &[u8; 4] = b"CNHE";
const VERSION: u8 = 1;
const KIND_PK: u8 = 1;
const KIND_MASKS: u8 = 2;
const KIND_RESPONSE: u8 = 3;
const SEED_LEN: usize = 32;

fn bits_of(q: u64) -> usize {
    64 - q.leading_zeros() as usize
}

/// Packed size in bytes of `count` residues per prime.
fn packed_len(moduli: &[u64], count: usize) -> usize {
    moduli
        .iter()
        .map(|&q| (bits_of(q) * count).div_ceil(8))
        .sum()
}

/// Appends `vals` (prime-major: `moduli.len()` rows of `count`) bit-packed.
fn pack(out: &mut Vec<u8>, moduli: &[u64], vals: &[u64], count: usize) {
    for (row, &q) in vals.chunks(count.max(1)).zip(moduli) {
        let bits = bits_of(q);
        let mut acc: u128 = 0;
        let mut n_acc = 0usize;
        for &v in row {
            acc |= (v as u128) << n_acc;
            n_acc += bits;
            while n_acc >= 8 {
                out.push(acc as u8);
                acc >>= 8;
                n_acc -= 8;
            }
        }
        if n_acc > 0 {
            out.push(acc as u8);
        }
    }
}

/// A cursor over a message being parsed.
struct Reader<'a> {
    what: &'static str,
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn err(&self, reason: impl Into<String>) -> HeError {
        HeError::Malformed {
            what: self.what,
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], HeError> {
        if self.buf.len() < n {
            return Err(self.err(format!(
                "truncated: need {n} bytes, {} left",
                self.buf.len()
            )));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    fn u32(&mut self) -> Result<usize, HeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn seed(&mut self) -> Result<[u8; SEED_LEN], HeError> {
        let mut s = [0u8; SEED_LEN];
        s.copy_from_slice(self.take(SEED_LEN)?);
        Ok(s)
    }

    fn header(&mut self, kind: u8, params: &HeParams) -> Result<(), HeError> {
        let h = self.take(8)?;
        if &h[..4] != MAGIC {
            return Err(self.err("bad magic"));
        }
        if h[4] != VERSION {
            return Err(self.err(format!("unsupported version {}", h[4])));
        }
        if h[5] != kind {
            return Err(self.err(format!("message kind {} where {kind} was expected", h[5])));
        }
        if u32::from(h[6]) != params.k() || u32::from(h[7]) != params.log_degree() {
            return Err(HeError::ParamMismatch {
                k: params.k(),
                log_n: params.log_degree(),
                got_k: h[6].into(),
                got_log_n: h[7].into(),
            });
        }
        Ok(())
    }

    /// Reads `count` residues per prime, checking each against its prime.
    fn residues(&mut self, moduli: &[u64], count: usize) -> Result<Vec<u64>, HeError> {
        let mut vals = Vec::with_capacity(moduli.len() * count);
        for &q in moduli {
            let bits = bits_of(q);
            let bytes = self.take((bits * count).div_ceil(8))?;
            let mut it = bytes.iter();
            let mut acc: u128 = 0;
            let mut n_acc = 0usize;
            let mask = (1u128 << bits) - 1;
            for _ in 0..count {
                while n_acc < bits {
                    // Length was checked above, so the iterator cannot run dry here.
                    let b = *it.next().ok_or_else(|| self.err("short residue data"))?;
                    acc |= (b as u128) << n_acc;
                    n_acc += 8;
                }
                let v = (acc & mask) as u64;
                acc >>= bits;
                n_acc -= bits;
                if v >= q {
                    return Err(self.err(format!("residue {v} not reduced mod {q}")));
                }
                vals.push(v);
            }
            if acc != 0 {
                return Err(self.err("non-zero padding bits"));
            }
        }
        Ok(vals)
    }

    fn finish(&self) -> Result<(), HeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err(format!("{} trailing bytes", self.buf.len())))
        }
    }

    /// Checks that `count` items of at least `min_item` bytes can still be present.
    fn check_count(&self, count: usize, min_item: usize) -> Result<(), HeError> {
        if count.saturating_mul(min_item) > self.buf.len() {
            return Err(self.err(format!("count {count} exceeds the message length")));
        }
        Ok(())
    }
}

fn header(out: &mut Vec<u8>, kind: u8, params: &HeParams) {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[VERSION, kind, params.k() as u8, params.log_degree() as u8]);
}

/// The client's public key: seed of `a` and `b = −a·s + e` (NTT form, all primes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyMsg {
    pub(crate) seed: [u8; SEED_LEN],
    pub(crate) b: Vec<u64>,
}

impl PublicKeyMsg {
    /// Serializes the key (≈ N·log2 Q / 8 bytes + 40).
    pub fn to_bytes(&self, params: &HeParams) -> Vec<u8> {
        let mut out = Vec::new();
        header(&mut out, KIND_PK, params);
        out.extend_from_slice(&self.seed);
        pack(&mut out, params.moduli(), &self.b, params.degree());
        out
    }

    /// Parses and validates a key.
    pub fn from_bytes(params: &HeParams, bytes: &[u8]) -> Result<Self, HeError> {
        let mut r = Reader {
            what: "public key",
            buf: bytes,
        };
        r.header(KIND_PK, params)?;
        let seed = r.seed()?;
        let b = r.residues(params.moduli(), params.degree())?;
        r.finish()?;
        Ok(PublicKeyMsg { seed, b })
    }
}

/// One seeded secret-key ciphertext: `c1` is regenerated from the seed, `c0` in NTT form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeededCt {
    pub(crate) seed: [u8; SEED_LEN],
    pub(crate) c0: Vec<u64>,
}

/// The client's encrypted masks of one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasksMsg {
    pub(crate) cts: Vec<SeededCt>,
}

impl MasksMsg {
    /// Number of ciphertexts.
    pub fn len(&self) -> usize {
        self.cts.len()
    }

    /// Whether there are no ciphertexts.
    pub fn is_empty(&self) -> bool {
        self.cts.is_empty()
    }

    /// Serializes the message.
    pub fn to_bytes(&self, params: &HeParams) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::byte_len(params, self.cts.len()));
        Self::write_head(&mut out, params, self.cts.len());
        for ct in &self.cts {
            Self::write_ct(&mut out, params, ct);
        }
        out
    }

    /// Encoded size of a message of `count` ciphertexts.
    pub fn byte_len(params: &HeParams, count: usize) -> usize {
        12 + count * (SEED_LEN + packed_len(params.moduli(), params.degree()))
    }

    /// The header and ciphertext count.
    pub(crate) fn write_head(out: &mut Vec<u8>, params: &HeParams, count: usize) {
        header(out, KIND_MASKS, params);
        out.extend_from_slice(&(count as u32).to_le_bytes());
    }

    /// One ciphertext: its seed and packed `c0`.
    pub(crate) fn write_ct(out: &mut Vec<u8>, params: &HeParams, ct: &SeededCt) {
        out.extend_from_slice(&ct.seed);
        pack(out, params.moduli(), &ct.c0, params.degree());
    }

    /// Parses and validates the message.
    pub fn from_bytes(params: &HeParams, bytes: &[u8]) -> Result<Self, HeError> {
        let n = params.degree();
        let mut r = Reader {
            what: "masks",
            buf: bytes,
        };
        r.header(KIND_MASKS, params)?;
        let count = r.u32()?;
        r.check_count(count, SEED_LEN + packed_len(params.moduli(), n))?;
        let mut cts = Vec::with_capacity(count);
        for _ in 0..count {
            let seed = r.seed()?;
            let c0 = r.residues(params.moduli(), n)?;
            cts.push(SeededCt { seed, c0 });
        }
        r.finish()?;
        Ok(MasksMsg { cts })
    }
}

/// One response ciphertext at the bottom level: full `c1` (NTT form) and only the `c0` coefficients
/// that carry outputs (power basis, in plan order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutCt {
    pub(crate) c1: Vec<u64>,
    pub(crate) count: usize,
    pub(crate) c0: Vec<u64>,
}

/// The server's response for one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseMsg {
    pub(crate) cts: Vec<OutCt>,
}

impl ResponseMsg {
    /// Number of ciphertexts.
    pub fn len(&self) -> usize {
        self.cts.len()
    }

    /// Whether there are no ciphertexts.
    pub fn is_empty(&self) -> bool {
        self.cts.is_empty()
    }

    /// Serializes the message.
    pub fn to_bytes(&self, params: &HeParams) -> Vec<u8> {
        let low = params.low_moduli();
        let mut out = Vec::new();
        header(&mut out, KIND_RESPONSE, params);
        out.extend_from_slice(&(self.cts.len() as u32).to_le_bytes());
        for ct in &self.cts {
            pack(&mut out, low, &ct.c1, params.degree());
            out.extend_from_slice(&(ct.count as u32).to_le_bytes());
            pack(&mut out, low, &ct.c0, ct.count);
        }
        out
    }

    /// Parses and validates the message.
    pub fn from_bytes(params: &HeParams, bytes: &[u8]) -> Result<Self, HeError> {
        let mut cts = Vec::new();
        Self::read_each(params, bytes, |count, ct| {
            cts.reserve_exact(count - cts.len());
            cts.push(ct);
            Ok(())
        })?;
        Ok(ResponseMsg { cts })
    }

    /// Parses and validates the message a ciphertext at a time: `each` gets the announced count
    /// (checked against the length) and every ciphertext as soon as it is read, so a reader need
    /// not hold them all. Returns the count.
    pub(crate) fn read_each(
        params: &HeParams,
        bytes: &[u8],
        mut each: impl FnMut(usize, OutCt) -> Result<(), HeError>,
    ) -> Result<usize, HeError> {
        let n = params.degree();
        let low = params.low_moduli();
        let mut r = Reader {
            what: "response",
            buf: bytes,
        };
        r.header(KIND_RESPONSE, params)?;
        let count = r.u32()?;
        r.check_count(count, packed_len(low, n) + 4)?;
        for _ in 0..count {
            let c1 = r.residues(low, n)?;
            let m = r.u32()?;
            if m > n {
                return Err(r.err(format!(
                    "{m} output coefficients in a degree-{n} ciphertext"
                )));
            }
            let c0 = r.residues(low, m)?;
            each(count, OutCt { c1, count: m, c0 })?;
        }
        r.finish()?;
        Ok(count)
    }
}
