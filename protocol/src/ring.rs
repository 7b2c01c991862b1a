//! Vectors over Z_2^k and their compact wire encoding (⌈k/8⌉ little-endian bytes per element).

use crate::ProtocolError;
use cryptonas_crypto::Csprng;
use cryptonas_model::intconv::ring_mask;

/// Uniform ring elements.
pub(crate) fn random(rng: &mut Csprng, n: usize, k: u32) -> Vec<u64> {
    let m = ring_mask(k);
    (0..n).map(|_| rng.u64() & m).collect()
}

/// `a − b mod 2^k`, element-wise.
pub(crate) fn sub(a: &[u64], b: &[u64], k: u32) -> Vec<u64> {
    let m = ring_mask(k);
    a.iter()
        .zip(b)
        .map(|(x, y)| x.wrapping_sub(*y) & m)
        .collect()
}

/// `a ← a + b mod 2^k`, element-wise.
pub(crate) fn add_assign(a: &mut [u64], b: &[u64], k: u32) {
    let m = ring_mask(k);
    a.iter_mut()
        .zip(b)
        .for_each(|(x, y)| *x = x.wrapping_add(*y) & m);
}

/// Bytes per element on the wire.
pub(crate) fn element_bytes(k: u32) -> usize {
    k.div_ceil(8) as usize
}

/// Packs ring elements, ⌈k/8⌉ bytes each.
pub(crate) fn pack(values: &[u64], k: u32) -> Vec<u8> {
    let w = element_bytes(k);
    let mut out = Vec::with_capacity(values.len() * w);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes()[..w]);
    }
    out
}

/// Unpacks exactly `n` ring elements; rejects a wrong length or a value ≥ 2^k.
pub(crate) fn unpack(
    bytes: &[u8],
    n: usize,
    k: u32,
    what: &'static str,
) -> Result<Vec<u64>, ProtocolError> {
    let w = element_bytes(k);
    if bytes.len() != n * w {
        return Err(ProtocolError::WrongSize {
            what,
            expected: n * w,
            got: bytes.len(),
        });
    }
    let m = ring_mask(k);
    bytes
        .chunks_exact(w)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..w].copy_from_slice(c);
            let v = u64::from_le_bytes(b);
            if v & !m != 0 {
                Err(ProtocolError::Malformed {
                    what,
                    reason: format!("element {v:#x} does not fit {k} bits"),
                })
            } else {
                Ok(v)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trip_and_validation() {
        let mut rng = Csprng::from_seed([1; 32]);
        for k in [8u32, 13, 32, 40, 64] {
            let v = random(&mut rng, 100, k);
            let bytes = pack(&v, k);
            assert_eq!(bytes.len(), 100 * element_bytes(k));
            assert_eq!(unpack(&bytes, 100, k, "t").unwrap(), v);
            assert!(unpack(&bytes[1..], 100, k, "t").is_err());
        }
        // 13-bit elements use 2 bytes: the top 3 bits must be zero.
        assert!(unpack(&[0xff, 0xff], 1, 13, "t").is_err());
        let a = vec![5u64, 0];
        let d = sub(&a, &[7, 1], 8);
        assert_eq!(d, vec![254, 255]);
        let mut s = d.clone();
        add_assign(&mut s, &[7, 1], 8);
        assert_eq!(s, a);
    }
}
