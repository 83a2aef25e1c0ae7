//! CIRCL `tkn20` compatibility: CIRCL's byte encodings of keys and ciphertexts
//! ("v1.3.8", and the older "v1.3.7" ciphertexts for reading) and CIRCL's own CCA
//! payload (BLAKE2X keystream, keyed BLAKE2b-256 MAC), so that keys and ciphertexts
//! move between keyfence and CIRCL in both directions.
//!
//! CIRCL frames fields with little-endian u16 (u32 for the v1.3.8 ciphertext body)
//! lengths, writes points uncompressed (G1 96 B, G2 192 B), GT as 576 bytes and
//! scalars as 32 big-endian bytes. Decoding here is strict: exact lengths, no trailing
//! bytes, canonical scalars, subgroup-checked points, attribute values that match the
//! hash of their text, and well-formed gate lists.

use std::collections::BTreeMap;

use blake2b_simd::Params;
use blstrs::{G1Affine, G2Affine, Scalar};
use ff::{Field, PrimeField};
use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::attributes::{validate_name, validate_value, BK_LABEL, MAX_ATTRIBUTES};
use crate::cca::{check_message_len, Ciphertext, Payload, SEED_LEN};
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::formula::{Formula, Gate, Wire};
use crate::hashing::Blake2x;
use crate::keys::{AttributeKey, MasterPublicKey, MasterSecretKey};
use crate::pairing::{g1_from_uncompressed, g2_from_uncompressed, scalar_from_be, Gt, GT_SIZE};
use crate::policy::{Policy, MAX_LEAVES};
use crate::scheme::SecretParams;
use crate::scheme::{decapsulate, encapsulate, Header, KeyAttr, KeyMaterial, PublicParams};
use crate::wipe::wipe;

/// Prefix of CIRCL ciphertexts since v1.3.8.
const V138: &[u8] = b"v1.3.8";

/// CIRCL's CCA payload of a ciphertext, with the exact bytes its MAC covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CirclPayload {
    /// True for the older "v1.3.7" framing (16-bit lengths, no prefix).
    legacy: bool,
    id: Vec<u8>,
    header_bytes: Vec<u8>,
    env: Vec<u8>,
    tag: Vec<u8>,
}

// ---------------------------------------------------------------- primitives

fn blake2b256(parts: &[&[u8]]) -> [u8; 32] {
    let mut st = Params::new().hash_length(32).to_state();
    parts.iter().for_each(|p| {
        st.update(p);
    });
    let mut out = [0u8; 32];
    out.copy_from_slice(st.finalize().as_bytes());
    out
}

fn blake2b256_mac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(Params::new().hash_length(32).key(key).hash(data).as_bytes());
    out
}

/// CIRCL's `expandSeed`: the Boneh–Katz identity and MAC key.
fn expand_seed(seed: &[u8]) -> ([u8; 32], Zeroizing<[u8; 32]>) {
    (
        blake2b256(&[b"id computation hash", seed]),
        Zeroizing::new(blake2b256(&[b"key computation hash", seed])),
    )
}

/// XORs `data` with the BLAKE2X keystream keyed by BLAKE2b-256 of the GT key.
/// The GT key is wiped once used.
fn keystream_xor(k: &mut Gt, data: &mut [u8]) {
    let k_bytes = Zeroizing::new(k.to_bytes());
    wipe(core::slice::from_mut(k));
    let key = Zeroizing::new(blake2b256(&[&k_bytes[..]]));
    let mut ks = Zeroizing::new(vec![0u8; data.len()]);
    Blake2x::new(key.as_ref(), &[]).fill(&mut ks);
    data.iter_mut().zip(ks.iter()).for_each(|(d, k)| *d ^= k);
}

/// Go `Scalar.SetBytes`: big-endian bytes reduced modulo the group order.
fn scalar_reduce_be(bytes: &[u8]) -> Scalar {
    let two_128 = Scalar::from_u128(1u128 << 127).double();
    bytes.chunks(16).fold(Scalar::ZERO, |acc, chunk| {
        let mut limb = [0u8; 16];
        limb[16 - chunk.len()..].copy_from_slice(chunk);
        let shift = if chunk.len() == 16 {
            two_128
        } else {
            Scalar::from_u128(1u128 << (8 * chunk.len()))
        };
        acc * shift + Scalar::from_u128(u128::from_be_bytes(limb))
    })
}

// ---------------------------------------------------------------- matrices

fn write_dims(w: &mut Writer, rows: u16, cols: u16) {
    w.u16_le(rows);
    w.u16_le(cols);
}

fn g1_matrix(rows: u16, cols: u16, pts: &[G1Affine]) -> Vec<u8> {
    let mut w = Writer::default();
    write_dims(&mut w, rows, cols);
    pts.iter().for_each(|p| w.bytes(&p.to_uncompressed()));
    w.buf
}

fn g2_matrix(rows: u16, cols: u16, pts: &[G2Affine]) -> Vec<u8> {
    let mut w = Writer::default();
    write_dims(&mut w, rows, cols);
    pts.iter().for_each(|p| w.bytes(&p.to_uncompressed()));
    w.buf
}

fn zp_matrix(rows: u16, cols: u16, s: &[Scalar]) -> Vec<u8> {
    let mut w = Writer::default();
    write_dims(&mut w, rows, cols);
    s.iter().for_each(|x| w.bytes(&x.to_bytes_be()));
    w.buf
}

/// Splits a CIRCL matrix encoding with the expected shape into its entries.
fn matrix_entries(bytes: &[u8], rows: u16, cols: u16, size: usize) -> Result<Vec<&[u8]>> {
    let mut r = Reader::new(bytes);
    if r.u16_le()? != rows || r.u16_le()? != cols {
        return Err(Error::Malformed("CIRCL matrix has unexpected dimensions"));
    }
    let n = usize::from(rows) * usize::from(cols);
    let out = (0..n).map(|_| r.take(size)).collect::<Result<Vec<_>>>()?;
    r.finish()?;
    Ok(out)
}

fn read_g1_matrix<const N: usize>(bytes: &[u8], rows: u16, cols: u16) -> Result<[G1Affine; N]> {
    let e = matrix_entries(bytes, rows, cols, 96)?;
    let mut out = [G1Affine::default(); N];
    for (o, b) in out.iter_mut().zip(e) {
        *o = g1_from_uncompressed(b)?;
    }
    Ok(out)
}

fn read_g2_matrix<const N: usize>(bytes: &[u8], rows: u16, cols: u16) -> Result<[G2Affine; N]> {
    let e = matrix_entries(bytes, rows, cols, 192)?;
    let mut out = [G2Affine::default(); N];
    for (o, b) in out.iter_mut().zip(e) {
        *o = g2_from_uncompressed(b)?;
    }
    Ok(out)
}

fn read_zp_matrix<const N: usize>(bytes: &[u8], rows: u16, cols: u16) -> Result<[Scalar; N]> {
    let e = matrix_entries(bytes, rows, cols, 32)?;
    let mut out = [Scalar::ZERO; N];
    for (o, b) in out.iter_mut().zip(e) {
        *o = scalar_from_be(b)?;
    }
    Ok(out)
}

fn lp16(w: &mut Writer, b: &[u8]) {
    w.lp16_le(b);
}

fn rows2<const R: usize>(flat: &[Scalar]) -> [[Scalar; 2]; R] {
    core::array::from_fn(|i| [flat[2 * i], flat[2 * i + 1]])
}

// ---------------------------------------------------------------- keys

impl MasterPublicKey {
    /// Encodes the key in CIRCL's format (3,282 bytes).
    pub fn to_circl_bytes(&self) -> Vec<u8> {
        let pp = &self.pp;
        let mut w = Writer::default();
        lp16(&mut w, &g2_matrix(4, 2, pp.b2.as_flattened()));
        lp16(&mut w, &g1_matrix(3, 2, pp.wb1.as_flattened()));
        let mut gt = Writer::default();
        write_dims(&mut gt, 2, 1);
        pp.btk.iter().for_each(|t| gt.bytes(&t.to_bytes()));
        lp16(&mut w, &gt.buf);
        w.buf
    }

    /// Decodes a CIRCL `PublicKey.MarshalBinary` encoding.
    pub fn from_circl_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let b2: [G2Affine; 8] = read_g2_matrix(r.lp16_le()?, 4, 2)?;
        let wb1: [G1Affine; 6] = read_g1_matrix(r.lp16_le()?, 3, 2)?;
        let gts = matrix_entries(r.lp16_le()?, 2, 1, GT_SIZE)?;
        r.finish()?;
        Ok(MasterPublicKey {
            pp: PublicParams {
                b2: core::array::from_fn(|i| [b2[2 * i], b2[2 * i + 1]]),
                wb1: core::array::from_fn(|i| [wb1[2 * i], wb1[2 * i + 1]]),
                btk: [Gt::from_bytes(gts[0])?, Gt::from_bytes(gts[1])?],
            },
        })
    }
}

impl MasterSecretKey {
    /// Encodes the key in CIRCL's format. The result is secret.
    pub fn to_circl_bytes(&self) -> Zeroizing<Vec<u8>> {
        let sp = &self.sp;
        let mut w = Writer::default();
        lp16(&mut w, &zp_matrix(3, 2, sp.a.as_flattened()));
        lp16(&mut w, &zp_matrix(4, 2, sp.wta.as_flattened()));
        lp16(&mut w, &zp_matrix(4, 2, sp.bstar.as_flattened()));
        lp16(&mut w, &zp_matrix(4, 2, sp.bstar12.as_flattened()));
        lp16(&mut w, &zp_matrix(4, 1, &sp.k));
        lp16(&mut w, &sp.prf_key);
        Zeroizing::new(w.buf)
    }

    /// Decodes a CIRCL `SystemSecretKey.MarshalBinary` encoding.
    pub fn from_circl_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let a: [Scalar; 6] = read_zp_matrix(r.lp16_le()?, 3, 2)?;
        let wta: [Scalar; 8] = read_zp_matrix(r.lp16_le()?, 4, 2)?;
        let bstar: [Scalar; 8] = read_zp_matrix(r.lp16_le()?, 4, 2)?;
        let bstar12: [Scalar; 8] = read_zp_matrix(r.lp16_le()?, 4, 2)?;
        let k: [Scalar; 4] = read_zp_matrix(r.lp16_le()?, 4, 1)?;
        let prf_key = r.lp16_le()?.to_vec();
        r.finish()?;
        if prf_key.is_empty() || prf_key.len() > 64 {
            return Err(Error::Malformed("PRF key must be 1 to 64 bytes"));
        }
        Ok(MasterSecretKey {
            sp: SecretParams {
                a: rows2(&a),
                wta: rows2(&wta),
                bstar: rows2(&bstar),
                bstar12: rows2(&bstar12),
                k,
                prf_key,
            },
        })
    }
}

fn write_k3_map(w: &mut Writer, m: &BTreeMap<String, [G1Affine; 4]>) {
    w.count16_le(m.len());
    for (label, pts) in m {
        lp16(w, label.as_bytes());
        lp16(w, &g1_matrix(4, 1, pts));
    }
}

fn read_k3_map(r: &mut Reader<'_>) -> Result<BTreeMap<String, [G1Affine; 4]>> {
    let n = r.u16_le()?;
    let mut out = BTreeMap::new();
    let mut last: Option<String> = None;
    for _ in 0..n {
        let label = String::from_utf8(r.lp16_le()?.to_vec())
            .map_err(|_| Error::Malformed("label is not UTF-8"))?;
        if last.as_ref().is_some_and(|l| *l >= label) {
            return Err(Error::Malformed("CIRCL key labels not sorted or repeated"));
        }
        out.insert(label.clone(), read_g1_matrix(r.lp16_le()?, 4, 1)?);
        last = Some(label);
    }
    Ok(out)
}

impl AttributeKey {
    /// Encodes the key in CIRCL's format. The result is secret. Fails only for keys
    /// too large for CIRCL's 16-bit length fields.
    pub fn to_circl_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        let km = &self.km;
        let mut attrs = Writer::default();
        attrs.count16_le(km.attrs.len());
        for (label, a) in &km.attrs {
            lp16(&mut attrs, label.as_bytes());
            attrs.u8(u8::from(a.wild));
            attrs.bytes(&a.value.to_bytes_be());
        }
        let mut w = Writer::default();
        w.nested16_le(attrs);
        lp16(&mut w, &g2_matrix(3, 1, &km.k1));
        lp16(&mut w, &g1_matrix(4, 1, &km.k2));
        write_k3_map(&mut w, &km.k3);
        write_k3_map(&mut w, &km.k3wild);
        w.into_checked().map(Zeroizing::new)
    }

    /// Decodes a CIRCL `AttributeKey.MarshalBinary` encoding.
    pub fn from_circl_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let mut ar = Reader::new(r.lp16_le()?);
        let n = ar.u16_le()?;
        if usize::from(n) > MAX_ATTRIBUTES + 1 {
            return Err(Error::Malformed("too many attributes in key"));
        }
        let mut attrs = BTreeMap::new();
        let mut last: Option<String> = None;
        for _ in 0..n {
            let label = String::from_utf8(ar.lp16_le()?.to_vec())
                .map_err(|_| Error::Malformed("label is not UTF-8"))?;
            if last.as_ref().is_some_and(|l| *l >= label) {
                return Err(Error::Malformed("CIRCL key labels not sorted or repeated"));
            }
            let wild = match ar.u8()? {
                0 => false,
                1 => true,
                _ => return Err(Error::Malformed("wildcard flag must be 0 or 1")),
            };
            let value = scalar_from_be(ar.take(32)?)?;
            let valid = if wild {
                label == BK_LABEL && value == Scalar::ZERO
            } else {
                validate_name(&label).is_ok()
            };
            if !valid {
                return Err(Error::Malformed("unexpected attribute in CIRCL key"));
            }
            attrs.insert(
                label.clone(),
                KeyAttr {
                    value,
                    wild,
                    raw: None,
                },
            );
            last = Some(label);
        }
        ar.finish()?;
        let k1 = read_g2_matrix(r.lp16_le()?, 3, 1)?;
        let k2 = read_g1_matrix(r.lp16_le()?, 4, 1)?;
        let k3 = read_k3_map(&mut r)?;
        let k3wild = read_k3_map(&mut r)?;
        r.finish()?;
        let same_labels = k3.keys().eq(attrs.keys())
            && k3wild
                .keys()
                .eq(attrs.iter().filter(|(_, a)| a.wild).map(|(k, _)| k));
        if !same_labels {
            return Err(Error::Malformed(
                "CIRCL key components do not match its attributes",
            ));
        }
        Ok(AttributeKey {
            km: KeyMaterial {
                attrs,
                k1,
                k2,
                k3,
                k3wild,
            },
        })
    }
}

// ---------------------------------------------------------------- policies

const AND_GATE: u8 = 0;
const OR_GATE: u8 = 1;

/// CIRCL's policy encoding: a gate list over numbered wires, then the wires.
fn policy_bytes(f: &Formula) -> Writer {
    let n = f.wires.len() - 1;
    let mut gates: Vec<(u8, usize, usize, usize)> = Vec::with_capacity(n);
    fn walk(g: &Gate, n: usize, gates: &mut Vec<(u8, usize, usize, usize)>) -> usize {
        match g {
            Gate::Leaf(i) => *i,
            Gate::And(a, b) | Gate::Or(a, b) => {
                let in0 = walk(a, n, gates);
                let in1 = walk(b, n, gates);
                let out = n + 1 + gates.len();
                let class = if matches!(g, Gate::And(..)) {
                    AND_GATE
                } else {
                    OR_GATE
                };
                gates.push((class, in0, in1, out));
                out
            }
        }
    }
    walk(&f.root, n, &mut gates);
    let mut fw = Writer::default();
    fw.count16_le(gates.len());
    for (class, in0, in1, out) in gates {
        fw.u8(class);
        fw.u16_le(in0 as u16);
        fw.u16_le(in1 as u16);
        fw.u16_le(out as u16);
    }
    let mut w = Writer::default();
    w.nested16_le(fw);
    w.count16_le(f.wires.len());
    for wire in &f.wires {
        let mut ww = Writer::default();
        lp16(&mut ww, wire.label.as_bytes());
        lp16(&mut ww, wire.raw.as_bytes());
        lp16(&mut ww, &wire.value.to_bytes_be());
        ww.u8(u8::from(wire.positive));
        w.nested16_le(ww);
    }
    w
}

/// Rebuilds the gate tree from CIRCL's numbered gate list, rejecting lists that are
/// not a tree over exactly `n + 1` input wires.
fn gates_to_tree(gates: &[(u8, usize, usize, usize)]) -> Result<Gate> {
    let n = gates.len();
    let mut by_out: Vec<Option<usize>> = vec![None; n];
    let mut used = vec![false; 2 * n];
    for (g, &(class, in0, in1, out)) in gates.iter().enumerate() {
        if class > OR_GATE || out < n + 1 || out > 2 * n {
            return Err(Error::Malformed("CIRCL gate out of range"));
        }
        for input in [in0, in1] {
            match used.get_mut(input) {
                Some(u) if !*u => *u = true,
                _ => return Err(Error::Malformed("CIRCL gate input out of range or reused")),
            }
        }
        let slot = &mut by_out[out - n - 1];
        if slot.is_some() {
            return Err(Error::Malformed("CIRCL gate output produced twice"));
        }
        *slot = Some(g);
    }
    fn build(
        wire: usize,
        n: usize,
        gates: &[(u8, usize, usize, usize)],
        by_out: &[Option<usize>],
        visited: &mut usize,
    ) -> Result<Gate> {
        if wire <= n {
            return Ok(Gate::Leaf(wire));
        }
        let g = by_out[wire - n - 1].ok_or(Error::Malformed("CIRCL wire without a gate"))?;
        *visited += 1;
        if *visited > n {
            return Err(Error::Malformed("CIRCL gate graph is not a tree"));
        }
        let (class, in0, in1, _) = gates[g];
        let a = Box::new(build(in0, n, gates, by_out, visited)?);
        let b = Box::new(build(in1, n, gates, by_out, visited)?);
        Ok(if class == AND_GATE {
            Gate::And(a, b)
        } else {
            Gate::Or(a, b)
        })
    }
    let mut visited = 0;
    let root = build(2 * n, n, gates, &by_out, &mut visited)?;
    if visited != n {
        return Err(Error::Malformed("CIRCL gate graph is not a tree"));
    }
    Ok(root)
}

fn read_policy(bytes: &[u8]) -> Result<Formula> {
    let mut r = Reader::new(bytes);
    let mut fr = Reader::new(r.lp16_le()?);
    let n = usize::from(fr.u16_le()?);
    if n + 1 > MAX_LEAVES {
        return Err(Error::Malformed("CIRCL policy too large"));
    }
    let gates = (0..n)
        .map(|_| {
            Ok((
                fr.u8()?,
                usize::from(fr.u16_le()?),
                usize::from(fr.u16_le()?),
                usize::from(fr.u16_le()?),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    fr.finish()?;
    let root = gates_to_tree(&gates)?;
    if usize::from(r.u16_le()?) != n + 1 {
        return Err(Error::Malformed(
            "CIRCL policy wire count does not match its gates",
        ));
    }
    let mut wires = Vec::with_capacity(n + 1);
    for _ in 0..=n {
        let mut wr = Reader::new(r.lp16_le()?);
        let text = |b: &[u8]| {
            String::from_utf8(b.to_vec()).map_err(|_| Error::Malformed("text is not UTF-8"))
        };
        let label = text(wr.lp16_le()?)?;
        let raw = text(wr.lp16_le()?)?;
        let value = scalar_from_be(wr.lp16_le()?)?;
        let positive = match wr.u8()? {
            0 => false,
            1 => true,
            _ => return Err(Error::Malformed("wire polarity must be 0 or 1")),
        };
        wr.finish()?;
        validate_name(&label)
            .and_then(|_| validate_value(&raw))
            .map_err(|_| Error::Malformed("invalid attribute in CIRCL policy"))?;
        let wire = Wire::new(&label, &raw, positive);
        if wire.value != value {
            return Err(Error::Malformed(
                "CIRCL wire value is not the hash of its text",
            ));
        }
        wires.push(wire);
    }
    r.finish()?;
    let f = Formula { wires, root };
    f.validate()?;
    Ok(f)
}

// ---------------------------------------------------------------- ciphertexts

fn header_bytes(h: &Header) -> Result<Vec<u8>> {
    let mut w = Writer::default();
    w.nested16_le(policy_bytes(&h.formula));
    lp16(&mut w, &g2_matrix(4, 1, &h.c1));
    w.count16_le(h.c2.len());
    h.c2.iter().for_each(|c| lp16(&mut w, &g2_matrix(4, 1, c)));
    w.count16_le(h.c3.len());
    h.c3.iter().for_each(|c| lp16(&mut w, &g1_matrix(3, 1, c)));
    for neg in &h.c3neg {
        match neg {
            Some(c) => lp16(&mut w, &g1_matrix(3, 1, c)),
            None => lp16(&mut w, &[]),
        }
    }
    w.into_checked()
}

fn read_header(bytes: &[u8]) -> Result<Header> {
    let mut r = Reader::new(bytes);
    let formula = read_policy(r.lp16_le()?)?;
    let augmented = formula.with_identity(Scalar::ZERO);
    let d = augmented
        .repetition_indices()
        .into_iter()
        .max()
        .unwrap_or(0)
        + 1;
    let c1 = read_g2_matrix(r.lp16_le()?, 4, 1)?;
    if usize::from(r.u16_le()?) != d {
        return Err(Error::Malformed(
            "CIRCL ciphertext has the wrong number of c2",
        ));
    }
    let c2 = (0..d)
        .map(|_| read_g2_matrix(r.lp16_le()?, 4, 1))
        .collect::<Result<Vec<_>>>()?;
    if usize::from(r.u16_le()?) != augmented.wires.len() {
        return Err(Error::Malformed(
            "CIRCL ciphertext has the wrong number of c3",
        ));
    }
    let c3 = augmented
        .wires
        .iter()
        .map(|_| read_g1_matrix(r.lp16_le()?, 3, 1))
        .collect::<Result<Vec<_>>>()?;
    let c3neg = augmented
        .wires
        .iter()
        .map(|wire| {
            let b = r.lp16_le()?;
            match (wire.positive, b.is_empty()) {
                (true, true) => Ok(None),
                (false, false) => read_g1_matrix(b, 3, 1).map(Some),
                _ => Err(Error::Malformed("c3neg present exactly for negated wires")),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    r.finish()?;
    Ok(Header {
        formula,
        c1,
        c2,
        c3,
        c3neg,
    })
}

/// The bytes CIRCL's MAC covers: the framed header and the framed envelope.
fn mac_data(p: &CirclPayload) -> Vec<u8> {
    let mut w = Writer::default();
    for part in [&p.header_bytes, &p.env] {
        if p.legacy {
            w.u16_le(part.len() as u16);
        } else {
            w.u32_le(part.len() as u32);
        }
        w.bytes(part);
    }
    w.buf
}

/// The full CIRCL encoding of a ciphertext.
pub(crate) fn ciphertext_bytes(_h: &Header, p: &CirclPayload) -> Vec<u8> {
    let mut w = Writer::default();
    let mac = mac_data(p);
    if p.legacy {
        lp16(&mut w, &p.id);
        lp16(&mut w, &mac);
    } else {
        w.bytes(V138);
        lp16(&mut w, &p.id);
        w.u32_le(mac.len() as u32);
        w.bytes(&mac);
    }
    lp16(&mut w, &p.tag);
    w.buf
}

impl Ciphertext {
    /// Decodes a CIRCL ciphertext, in the "v1.3.8" format or the older "v1.3.7" one.
    pub fn from_circl_bytes(bytes: &[u8]) -> Result<Self> {
        let legacy = !bytes.starts_with(V138);
        let mut r = Reader::new(if legacy { bytes } else { &bytes[V138.len()..] });
        let id = r.lp16_le()?.to_vec();
        let mac = if legacy { r.lp16_le()? } else { r.lp32_le()? };
        let tag = r.lp16_le()?.to_vec();
        r.finish()?;
        if id.len() != 32 || tag.len() != 32 {
            return Err(Error::Malformed("CIRCL id and tag must be 32 bytes"));
        }
        let mut mr = Reader::new(mac);
        let (hb, env) = if legacy {
            (mr.lp16_le()?, mr.lp16_le()?)
        } else {
            (mr.lp32_le()?, mr.lp32_le()?)
        };
        mr.finish()?;
        if env.len() < SEED_LEN {
            return Err(Error::Malformed("CIRCL envelope too short"));
        }
        let header = read_header(hb)?;
        Ok(Ciphertext {
            header,
            payload: Payload::Circl(CirclPayload {
                legacy,
                id,
                header_bytes: hb.to_vec(),
                env: env.to_vec(),
                tag,
            }),
        })
    }
}

impl MasterPublicKey {
    /// Encrypts with CIRCL's own CCA payload construction; `to_bytes` of the result is
    /// a "v1.3.8" CIRCL ciphertext that CIRCL's `AttributeKey.Decrypt` accepts.
    pub fn encrypt_circl<R: RngCore + CryptoRng>(
        &self,
        policy: &Policy,
        msg: &[u8],
        rng: &mut R,
    ) -> Result<Ciphertext> {
        check_message_len(msg)?;
        let mut env = Zeroizing::new(vec![0u8; SEED_LEN + msg.len()]);
        rng.fill_bytes(&mut env[..SEED_LEN]);
        env[SEED_LEN..].copy_from_slice(msg);
        let (id, mac_key) = expand_seed(&env[..SEED_LEN]);
        let formula = Formula::from_policy(policy);
        // Fail before the expensive part if the policy cannot be framed.
        policy_bytes(&formula).into_checked()?;
        let augmented = formula.with_identity(scalar_reduce_be(&id));
        let (header, mut k) = encapsulate(&self.pp, &augmented, formula, rng);
        let mut env_ct = env.to_vec();
        keystream_xor(&mut k, &mut env_ct);
        let mut payload = CirclPayload {
            legacy: false,
            id: id.to_vec(),
            header_bytes: header_bytes(&header)?,
            env: env_ct,
            tag: Vec::new(),
        };
        payload.tag = blake2b256_mac(mac_key.as_ref(), &mac_data(&payload)).to_vec();
        Ok(Ciphertext {
            header,
            payload: Payload::Circl(payload),
        })
    }
}

/// CIRCL's `DecryptCCA` on a parsed ciphertext.
pub(crate) fn decrypt(km: &KeyMaterial, header: &Header, p: &CirclPayload) -> Result<Vec<u8>> {
    let augmented = header.formula.with_identity(scalar_reduce_be(&p.id));
    let mut k = decapsulate(header, &augmented, km)?;
    let mut env = Zeroizing::new(p.env.clone());
    keystream_xor(&mut k, &mut env);
    if env.len() < SEED_LEN {
        return Err(Error::DecryptionFailed);
    }
    let (id, mac_key) = expand_seed(&env[..SEED_LEN]);
    let tag = blake2b256_mac(mac_key.as_ref(), &mac_data(p));
    if !bool::from(tag.ct_eq(&p.tag[..]) & id.ct_eq(&p.id[..])) {
        return Err(Error::DecryptionFailed);
    }
    Ok(env[SEED_LEN..].to_vec())
}
