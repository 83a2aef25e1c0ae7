//! Pairing-group helpers on top of blstrs: one shared Miller loop for a product of
//! pairings, constant-time exponentiation in GT, and GT (de)serialisation.

use blst::{
    blst_bendian_from_fp, blst_final_exp, blst_fp, blst_fp12, blst_fp12_cyclotomic_sqr,
    blst_fp12_in_group, blst_fp12_is_equal, blst_fp12_mul, blst_fp12_one, blst_fp6,
    blst_fp_from_bendian, blst_miller_loop_n, blst_p1_affine, blst_p2_affine,
};
use blstrs::{G1Affine, G2Affine, Scalar};
use group::prime::PrimeCurveAffine;
use subtle::{Choice, ConstantTimeEq};

use crate::error::{Error, Result};

/// Size of an uncompressed GT element: twelve 48-byte base-field coefficients.
pub(crate) const GT_SIZE: usize = 576;

/// An element of the target group GT (the order-r subgroup of Fp12*), written
/// multiplicatively. blstrs does not expose its Fp12 type, so this wraps blst's.
#[derive(Clone, Copy)]
pub(crate) struct Gt(blst_fp12);

impl PartialEq for Gt {
    fn eq(&self, other: &Self) -> bool {
        // SAFETY: both arguments are references to valid, initialised `blst_fp12`
        // values; blst only reads them.
        unsafe { blst_fp12_is_equal(&self.0, &other.0) }
    }
}

impl Eq for Gt {}

impl core::fmt::Debug for Gt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Gt(..)")
    }
}

impl Default for Gt {
    fn default() -> Self {
        Gt::one()
    }
}

impl Gt {
    /// The identity element.
    pub(crate) fn one() -> Gt {
        // SAFETY: `blst_fp12_one` returns a pointer to a static, initialised constant.
        Gt(unsafe { *blst_fp12_one() })
    }

    /// `e(g1, g2)` for the standard generators.
    pub(crate) fn generator() -> Gt {
        multi_pairing(&[(G1Affine::generator(), G2Affine::generator())])
    }

    /// The group operation.
    pub(crate) fn mul(&self, other: &Gt) -> Gt {
        let mut out = blst_fp12 {
            fp6: [blst_fp6::default(); 2],
        };
        // SAFETY: all three pointers refer to valid `blst_fp12` values; blst supports
        // `ret` distinct from the inputs, which holds here.
        unsafe { blst_fp12_mul(&mut out, &self.0, &other.0) };
        Gt(out)
    }

    fn square(&self) -> Gt {
        let mut out = blst_fp12 {
            fp6: [blst_fp6::default(); 2],
        };
        // SAFETY: valid pointers as above. Cyclotomic squaring is correct for elements
        // of the cyclotomic subgroup, which contains GT; every `Gt` value is in GT
        // (pairing outputs, checked decodings, and products/powers of those).
        unsafe { blst_fp12_cyclotomic_sqr(&mut out, &self.0) };
        Gt(out)
    }

    // `limb_t` is `u64` here but `u32` on 32-bit targets, hence the casts.
    #[allow(clippy::unnecessary_cast)]
    fn limbs(&self) -> [u64; 72] {
        let mut out = [0u64; 72];
        let fps = self
            .0
            .fp6
            .iter()
            .flat_map(|f6| f6.fp2.iter())
            .flat_map(|f2| f2.fp.iter());
        for (chunk, fp) in out.chunks_exact_mut(6).zip(fps) {
            for (o, l) in chunk.iter_mut().zip(fp.l.iter()) {
                *o = *l as u64;
            }
        }
        out
    }

    /// `self = other` if `choice` is set, in constant time.
    #[allow(clippy::unnecessary_cast)]
    fn conditional_assign(&mut self, other: &Gt, choice: Choice) {
        let mask = 0u64.wrapping_sub(u64::from(choice.unwrap_u8()));
        let b = other.limbs();
        let fps = self
            .0
            .fp6
            .iter_mut()
            .flat_map(|f6| f6.fp2.iter_mut())
            .flat_map(|f2| f2.fp.iter_mut());
        for (fp, chunk) in fps.zip(b.chunks_exact(6)) {
            for (l, bl) in fp.l.iter_mut().zip(chunk) {
                let cur = *l as u64;
                *l = (cur ^ (mask & (cur ^ bl))) as _;
            }
        }
    }

    /// `prod bases[k]^exps[k]` in constant time with respect to the exponents
    /// (interleaved 4-bit fixed windows sharing one chain of squarings, table lookups
    /// by constant-time selection). Use it whenever an exponent is secret.
    pub(crate) fn multi_pow_ct(bases: &[Gt], exps: &[Scalar]) -> Gt {
        let tables: Vec<[Gt; 16]> = bases
            .iter()
            .map(|b| {
                let mut table = [Gt::one(); 16];
                for i in 1..16 {
                    table[i] = table[i - 1].mul(b);
                }
                table
            })
            .collect();
        let digits: Vec<[u8; 32]> = exps.iter().map(Scalar::to_bytes_be).collect();
        let mut acc = Gt::one();
        for pos in 0..64 {
            for _ in 0..4 {
                acc = acc.square();
            }
            for (table, d) in tables.iter().zip(&digits) {
                let byte = d[pos / 2];
                let nibble = if pos % 2 == 0 { byte >> 4 } else { byte & 0x0f };
                let mut pick = Gt::one();
                for (idx, entry) in table.iter().enumerate() {
                    pick.conditional_assign(entry, (idx as u8).ct_eq(&nibble));
                }
                acc = acc.mul(&pick);
            }
        }
        acc
    }

    /// `self^e` in constant time with respect to `e`.
    pub(crate) fn pow_ct(&self, e: &Scalar) -> Gt {
        Gt::multi_pow_ct(core::slice::from_ref(self), core::slice::from_ref(e))
    }

    /// The twelve base-field coefficients in CIRCL's order: `c1` before `c0` at every
    /// level of the tower (Fp12 over Fp6 over Fp2 over Fp).
    fn coefficients_mut(&mut self) -> [&mut blst_fp; 12] {
        let [a, b] = &mut self.0.fp6;
        let [b0, b1, b2] = &mut b.fp2;
        let [a0, a1, a2] = &mut a.fp2;
        let [b2x, b2y] = &mut b2.fp;
        let [b1x, b1y] = &mut b1.fp;
        let [b0x, b0y] = &mut b0.fp;
        let [a2x, a2y] = &mut a2.fp;
        let [a1x, a1y] = &mut a1.fp;
        let [a0x, a0y] = &mut a0.fp;
        [b2y, b2x, b1y, b1x, b0y, b0x, a2y, a2x, a1y, a1x, a0y, a0x]
    }

    /// Serialises as 576 bytes (twelve big-endian coefficients, the layout CIRCL uses).
    pub(crate) fn to_bytes(self) -> [u8; GT_SIZE] {
        let mut copy = self;
        let mut out = [0u8; GT_SIZE];
        for (chunk, c) in out.chunks_exact_mut(48).zip(copy.coefficients_mut()) {
            // SAFETY: `chunk` is exactly 48 writable bytes and `c` a valid `blst_fp`.
            unsafe { blst_bendian_from_fp(chunk.as_mut_ptr(), c) };
        }
        out
    }

    /// Parses 576 bytes, rejecting non-canonical coefficients and elements outside the
    /// order-r subgroup.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Gt> {
        if bytes.len() != GT_SIZE {
            return Err(Error::Malformed("GT element must be 576 bytes"));
        }
        let mut g = Gt::one();
        for (c, chunk) in g.coefficients_mut().into_iter().zip(bytes.chunks_exact(48)) {
            let mut back = [0u8; 48];
            // SAFETY: `chunk` is exactly 48 readable bytes, `back` 48 writable bytes and
            // `c` a valid `blst_fp`; blst reads/writes exactly those sizes.
            unsafe {
                blst_fp_from_bendian(c, chunk.as_ptr());
                blst_bendian_from_fp(back.as_mut_ptr(), c);
            }
            // Reduction happened iff the input was not the canonical representative.
            if back[..] != chunk[..] {
                return Err(Error::InvalidPoint("GT coefficient not canonical"));
            }
        }
        // SAFETY: `g.0` is a valid, initialised `blst_fp12`; blst only reads it.
        if !unsafe { blst_fp12_in_group(&g.0) } {
            return Err(Error::InvalidPoint(
                "GT element not in the order-r subgroup",
            ));
        }
        Ok(g)
    }
}

/// Computes `prod e(P_i, Q_i)` with a single shared Miller loop and one final
/// exponentiation. Pairs with an identity point contribute 1 and are skipped.
pub(crate) fn multi_pairing(pairs: &[(G1Affine, G2Affine)]) -> Gt {
    let live: Vec<&(G1Affine, G2Affine)> = pairs
        .iter()
        .filter(|(p, q)| !bool::from(p.is_identity()) && !bool::from(q.is_identity()))
        .collect();
    if live.is_empty() {
        return Gt::one();
    }
    let ps: Vec<*const blst_p1_affine> = live
        .iter()
        .map(|(p, _)| p.as_ref() as *const blst_p1_affine)
        .collect();
    let qs: Vec<*const blst_p2_affine> = live
        .iter()
        .map(|(_, q)| q.as_ref() as *const blst_p2_affine)
        .collect();
    let mut f = Gt::one().0;
    let mut out = f;
    // SAFETY: `ps` and `qs` hold `live.len()` pointers each, every one derived from a
    // reference into `pairs`, which outlives this call, so all are valid, aligned and
    // initialised `blst_p1_affine` / `blst_p2_affine` values (blstrs' `G1Affine` and
    // `G2Affine` expose them through `AsRef`). blst reads exactly `n` entries of each
    // array and writes only to `f`, then reads `f` and writes `out`. No entry is null
    // (blst reads a null entry as "the element after the previous one"). Points at
    // infinity, which blst's Miller loop does not handle, were filtered out above; all
    // other points are valid subgroup elements because blstrs only constructs checked
    // points (or results of group operations on them).
    unsafe {
        blst_miller_loop_n(&mut f, qs.as_ptr(), ps.as_ptr(), live.len());
        blst_final_exp(&mut out, &f);
    }
    Gt(out)
}

/// G2 point from its 96-byte compressed encoding, with subgroup check.
pub(crate) fn g2_from_compressed(bytes: &[u8]) -> Result<G2Affine> {
    let arr: [u8; 96] = bytes
        .try_into()
        .map_err(|_| Error::Malformed("G2 point must be 96 bytes"))?;
    Option::from(G2Affine::from_compressed(&arr)).ok_or(Error::InvalidPoint(
        "G2 point off-curve, outside subgroup or non-canonical",
    ))
}

/// G1 point from its 48-byte compressed encoding, with subgroup check.
pub(crate) fn g1_from_compressed(bytes: &[u8]) -> Result<G1Affine> {
    let arr: [u8; 48] = bytes
        .try_into()
        .map_err(|_| Error::Malformed("G1 point must be 48 bytes"))?;
    Option::from(G1Affine::from_compressed(&arr)).ok_or(Error::InvalidPoint(
        "G1 point off-curve, outside subgroup or non-canonical",
    ))
}

/// G1 point from its 96-byte uncompressed encoding, with subgroup check.
pub(crate) fn g1_from_uncompressed(bytes: &[u8]) -> Result<G1Affine> {
    let arr: [u8; 96] = bytes
        .try_into()
        .map_err(|_| Error::Malformed("uncompressed G1 point must be 96 bytes"))?;
    Option::from(G1Affine::from_uncompressed(&arr)).ok_or(Error::InvalidPoint(
        "G1 point off-curve, outside subgroup or non-canonical",
    ))
}

/// G2 point from its 192-byte uncompressed encoding, with subgroup check.
pub(crate) fn g2_from_uncompressed(bytes: &[u8]) -> Result<G2Affine> {
    let arr: [u8; 192] = bytes
        .try_into()
        .map_err(|_| Error::Malformed("uncompressed G2 point must be 192 bytes"))?;
    Option::from(G2Affine::from_uncompressed(&arr)).ok_or(Error::InvalidPoint(
        "G2 point off-curve, outside subgroup or non-canonical",
    ))
}

/// Scalar from its canonical 32-byte big-endian encoding.
pub(crate) fn scalar_from_be(bytes: &[u8]) -> Result<Scalar> {
    let arr: [u8; 32] = bytes.try_into().map_err(|_| Error::InvalidScalar)?;
    Option::from(Scalar::from_bytes_be(&arr)).ok_or(Error::InvalidScalar)
}

#[cfg(test)]
mod tests {
    use super::*;
    use blstrs::{G1Projective, G2Projective};
    use group::{Curve, Group};

    #[test]
    fn shared_miller_loop_is_bilinear_and_skips_identity() {
        let g1 = G1Affine::generator();
        let g2 = G2Affine::generator();
        let p = (G1Projective::generator() * Scalar::from(7u64)).to_affine();
        let q = (G2Projective::generator() * Scalar::from(11u64)).to_affine();
        let lhs = multi_pairing(&[(p, g2), (g1, q), (G1Affine::identity(), q)]);
        let rhs = Gt::generator().pow_ct(&Scalar::from(18u64));
        assert_eq!(lhs, rhs);
        let blstrs_gt = blstrs::pairing(&p, &q);
        assert_eq!(blstrs_gt, blstrs::Gt::generator() * Scalar::from(77u64));
        assert_eq!(
            multi_pairing(&[(p, q)]),
            Gt::generator().pow_ct(&Scalar::from(77u64))
        );
    }

    #[test]
    fn pow_ct_matches_repeated_multiplication() {
        let g = Gt::generator();
        let mut acc = Gt::one();
        for _ in 0..21 {
            acc = acc.mul(&g);
        }
        assert_eq!(g.pow_ct(&Scalar::from(21u64)), acc);
        assert_eq!(g.pow_ct(&Scalar::from(0u64)), Gt::one());
        let h = g.pow_ct(&Scalar::from(5u64));
        let two = Gt::multi_pow_ct(&[g, h], &[Scalar::from(3u64), Scalar::from(4u64)]);
        assert_eq!(two, g.pow_ct(&Scalar::from(23u64)));
    }

    #[test]
    fn gt_bytes_round_trip_and_reject_non_members() {
        let g = Gt::generator().pow_ct(&Scalar::from(5u64));
        let bytes = g.to_bytes();
        assert_eq!(Gt::from_bytes(&bytes).unwrap(), g);
        let mut bad = bytes;
        bad[100] ^= 1;
        assert!(matches!(Gt::from_bytes(&bad), Err(Error::InvalidPoint(_))));
        assert!(matches!(
            Gt::from_bytes(&bytes[1..]),
            Err(Error::Malformed(_))
        ));
        let mut big = bytes;
        big[..48].copy_from_slice(&[0xff; 48]);
        assert!(matches!(Gt::from_bytes(&big), Err(Error::InvalidPoint(_))));
    }
}
