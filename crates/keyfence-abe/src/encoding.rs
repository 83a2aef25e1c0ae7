//! keyfence's native, versioned and canonical byte encodings.
//!
//! Every encoding starts with a 4-byte prefix `"kf" || type || version` and is then a
//! fixed sequence of fields: big-endian integers, UTF-8 strings with a big-endian u16
//! length, compressed G1 (48 B) and G2 (96 B) points, 576-byte GT elements and 32-byte
//! big-endian scalars. Decoding rejects anything that would not re-encode to the same
//! bytes in the same version: trailing data, unknown tags, unsorted or duplicate map
//! entries, non-canonical scalars, points that are off-curve, outside the prime-order
//! subgroup or not canonically encoded.
//!
//! Version 2 (written now) differs from version 1 only in its strings: version 1 gave
//! them a one-byte length and allowed only 1 to 255 bytes of ASCII letters, digits,
//! `_`, `-` and `.` (no `and`, `or`, `not`). Version 1 is still read, with exactly its
//! old rules. Keys, policies and attribute sets read from version 1 are written back
//! as version 2; a ciphertext keeps the version it was made in, because its AES-GCM
//! associated data and HMAC cover its encoding.

use std::collections::BTreeMap;

use blstrs::{G1Affine, G2Affine, Scalar};

use crate::attributes::{validate_name, validate_value, Attributes, BK_LABEL, MAX_ATTRIBUTES};
use crate::cca::{Ciphertext, Payload, ID_LEN, SEED_LEN};
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::formula::{Formula, Gate};
use crate::hashing::hash_value;
use crate::keys::{AttributeKey, MasterPublicKey, MasterSecretKey};
use crate::pairing::{g1_from_compressed, g2_from_compressed, scalar_from_be, Gt};
use crate::policy::{Literal, Node, Policy, MAX_DEPTH, MAX_LEAVES};
use crate::scheme::{Header, KeyAttr, KeyMaterial, PublicParams, SecretParams};
use crate::text::needs_quotes;

/// Version of the native encodings written by this crate (version 1 is still read).
pub const NATIVE_VERSION: u8 = 2;
/// The first native version: one-byte string lengths, ASCII-word names and values.
const V1: u8 = 1;

const TYPE_MPK: u8 = 1;
const TYPE_MSK: u8 = 2;
const TYPE_KEY: u8 = 3;
const TYPE_CT: u8 = 4;
const TYPE_POLICY: u8 = 5;
const TYPE_ATTRS: u8 = 6;

const TAG_AND: u8 = 1;
const TAG_OR: u8 = 2;
const TAG_POS: u8 = 3;
const TAG_NEG: u8 = 4;

fn header(w: &mut Writer, ty: u8, version: u8) {
    w.bytes(b"kf");
    w.u8(ty);
    w.u8(version);
}

/// Reads the prefix of an encoding of type `ty`; returns its version (1 or 2).
fn check_header(r: &mut Reader<'_>, ty: u8) -> Result<u8> {
    let prefix: [u8; 4] = r.array()?;
    if &prefix[..2] != b"kf" {
        return Err(Error::UnsupportedVersion("not a keyfence-abe encoding"));
    }
    if prefix[2] != ty {
        return Err(Error::UnsupportedVersion("encoding of another type"));
    }
    if prefix[3] != V1 && prefix[3] != NATIVE_VERSION {
        return Err(Error::UnsupportedVersion("unknown native encoding version"));
    }
    Ok(prefix[3])
}

/// Writes a name or value in the string framing of `version`.
fn write_text(w: &mut Writer, version: u8, s: &str) {
    if version == V1 {
        w.str8(s);
    } else {
        w.str16_be(s);
    }
}

/// What version 1 could hold: 1 to 255 bytes of ASCII letters, digits, `_`, `-`, `.`,
/// not a reserved word, not the Boneh–Katz label.
fn is_v1_text(s: &str) -> bool {
    s.len() <= 255 && s.is_ascii() && !needs_quotes(s) && s != BK_LABEL
}

/// Reads a string in the framing of `version`, unchecked.
fn read_text(r: &mut Reader<'_>, version: u8) -> Result<String> {
    if version == V1 {
        r.str8()
    } else {
        r.str16_be()
    }
}

/// Whether `s` is an acceptable attribute name under the rules of `version`.
fn name_ok(version: u8, s: &str) -> bool {
    if version == V1 {
        is_v1_text(s)
    } else {
        validate_name(s).is_ok()
    }
}

/// Whether `s` is an acceptable attribute value under the rules of `version`.
fn value_ok(version: u8, s: &str) -> bool {
    if version == V1 {
        is_v1_text(s)
    } else {
        validate_value(s).is_ok()
    }
}

const INVALID_TEXT: Error = Error::Malformed("invalid attribute name or value");

/// An attribute name under the rules of `version`.
fn read_name(r: &mut Reader<'_>, version: u8) -> Result<String> {
    let s = read_text(r, version)?;
    if name_ok(version, &s) {
        Ok(s)
    } else {
        Err(INVALID_TEXT)
    }
}

/// An attribute value under the rules of `version`.
fn read_value(r: &mut Reader<'_>, version: u8) -> Result<String> {
    let s = read_text(r, version)?;
    if value_ok(version, &s) {
        Ok(s)
    } else {
        Err(INVALID_TEXT)
    }
}

fn g1(w: &mut Writer, p: &G1Affine) {
    w.bytes(&p.to_compressed());
}
fn g2(w: &mut Writer, p: &G2Affine) {
    w.bytes(&p.to_compressed());
}
fn read_g1(r: &mut Reader<'_>) -> Result<G1Affine> {
    g1_from_compressed(r.take(48)?)
}
fn read_g2(r: &mut Reader<'_>) -> Result<G2Affine> {
    g2_from_compressed(r.take(96)?)
}
fn read_g1s<const N: usize>(r: &mut Reader<'_>) -> Result<[G1Affine; N]> {
    let mut out = [G1Affine::default(); N];
    for p in out.iter_mut() {
        *p = read_g1(r)?;
    }
    Ok(out)
}
fn read_g2s<const N: usize>(r: &mut Reader<'_>) -> Result<[G2Affine; N]> {
    let mut out = [G2Affine::default(); N];
    for p in out.iter_mut() {
        *p = read_g2(r)?;
    }
    Ok(out)
}
fn read_scalar(r: &mut Reader<'_>) -> Result<Scalar> {
    scalar_from_be(r.take(32)?)
}
fn read_scalars<const N: usize>(r: &mut Reader<'_>) -> Result<[Scalar; N]> {
    let mut out = [Scalar::default(); N];
    for s in out.iter_mut() {
        *s = read_scalar(r)?;
    }
    Ok(out)
}
fn read_matrix<const N: usize>(r: &mut Reader<'_>) -> Result<[[Scalar; 2]; N]> {
    let mut out = [[Scalar::default(); 2]; N];
    for row in out.iter_mut() {
        *row = read_scalars::<2>(r)?;
    }
    Ok(out)
}
fn write_node(w: &mut Writer, node: &Node) {
    match node {
        Node::And(a, b) | Node::Or(a, b) => {
            w.u8(if matches!(node, Node::And(..)) {
                TAG_AND
            } else {
                TAG_OR
            });
            write_node(w, a);
            write_node(w, b);
        }
        Node::Leaf(l) => {
            w.u8(if l.positive { TAG_POS } else { TAG_NEG });
            w.str16_be(&l.label);
            w.str16_be(&l.value);
        }
    }
}

/// Reads a prefix-order policy tree; `budget` bounds the number of nodes by
/// `2 * MAX_LEAVES`, `depth` (the levels still allowed below this node) the
/// recursion by [`MAX_DEPTH`].
fn read_node(r: &mut Reader<'_>, version: u8, budget: &mut usize, depth: usize) -> Result<Node> {
    if *budget == 0 {
        return Err(Error::Malformed("policy has too many nodes"));
    }
    *budget -= 1;
    match r.u8()? {
        t @ (TAG_AND | TAG_OR) => {
            let below = depth
                .checked_sub(1)
                .ok_or(Error::PolicyTooDeep { max: MAX_DEPTH })?;
            let a = Box::new(read_node(r, version, budget, below)?);
            let b = Box::new(read_node(r, version, budget, below)?);
            Ok(if t == TAG_AND {
                Node::And(a, b)
            } else {
                Node::Or(a, b)
            })
        }
        t @ (TAG_POS | TAG_NEG) => Ok(Node::Leaf(Literal {
            label: read_name(r, version)?,
            value: read_value(r, version)?,
            positive: t == TAG_POS,
        })),
        _ => Err(Error::Malformed("unknown policy node tag")),
    }
}

fn read_policy_tree(r: &mut Reader<'_>, version: u8) -> Result<Policy> {
    let mut budget = 2 * MAX_LEAVES;
    Policy::from_root(read_node(r, version, &mut budget, MAX_DEPTH)?)
}

impl Policy {
    /// Native encoding of the policy (in negation normal form).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        header(&mut w, TYPE_POLICY, NATIVE_VERSION);
        write_node(&mut w, &self.root);
        w.buf
    }

    /// Decodes [`Policy::to_bytes`] output (native version 2, or 1).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let version = check_header(&mut r, TYPE_POLICY)?;
        let p = read_policy_tree(&mut r, version)?;
        r.finish()?;
        Ok(p)
    }
}

impl Attributes {
    /// Native encoding of the attribute set.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        header(&mut w, TYPE_ATTRS, NATIVE_VERSION);
        w.u16_be(self.len() as u16);
        for (k, v) in self.iter() {
            w.str16_be(k);
            w.str16_be(v);
        }
        w.buf
    }

    /// Decodes [`Attributes::to_bytes`] output (native version 2, or 1); names must be
    /// strictly increasing.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let version = check_header(&mut r, TYPE_ATTRS)?;
        let n = r.u16_be()?;
        if usize::from(n) > MAX_ATTRIBUTES {
            return Err(Error::Malformed("too many attributes"));
        }
        let mut out = Attributes::new();
        let mut last: Option<String> = None;
        for _ in 0..n {
            let k = read_name(&mut r, version)?;
            let v = read_value(&mut r, version)?;
            if last.as_ref().is_some_and(|l| *l >= k) {
                return Err(Error::Malformed("attribute names not strictly increasing"));
            }
            out.insert(k.clone(), v)
                .map_err(|_| Error::Malformed("invalid attribute"))?;
            last = Some(k);
        }
        r.finish()?;
        Ok(out)
    }
}

impl MasterPublicKey {
    /// Native encoding (2,212 bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let pp = &self.pp;
        let mut w = Writer::default();
        header(&mut w, TYPE_MPK, NATIVE_VERSION);
        pp.b2.as_flattened().iter().for_each(|p| g2(&mut w, p));
        pp.wb1.as_flattened().iter().for_each(|p| g1(&mut w, p));
        pp.btk.iter().for_each(|t| w.bytes(&t.to_bytes()));
        w.buf
    }

    /// Decodes [`MasterPublicKey::to_bytes`] output (native version 2, or 1: the body
    /// is the same), checking every group element.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        check_header(&mut r, TYPE_MPK)?;
        let b2 = [
            read_g2s::<2>(&mut r)?,
            read_g2s::<2>(&mut r)?,
            read_g2s::<2>(&mut r)?,
            read_g2s::<2>(&mut r)?,
        ];
        let wb1 = [
            read_g1s::<2>(&mut r)?,
            read_g1s::<2>(&mut r)?,
            read_g1s::<2>(&mut r)?,
        ];
        let btk = [Gt::from_bytes(r.take(576)?)?, Gt::from_bytes(r.take(576)?)?];
        r.finish()?;
        Ok(MasterPublicKey {
            pp: PublicParams { b2, wb1, btk },
        })
    }
}

impl MasterSecretKey {
    /// Native encoding. The result is secret: store it as such.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let sp = &self.sp;
        let mut w = Writer::default();
        header(&mut w, TYPE_MSK, NATIVE_VERSION);
        for s in
            sp.a.as_flattened()
                .iter()
                .chain(sp.wta.as_flattened())
                .chain(sp.bstar.as_flattened())
                .chain(sp.bstar12.as_flattened())
                .chain(&sp.k)
        {
            w.bytes(&s.to_bytes_be());
        }
        w.u8(sp.prf_key.len() as u8);
        w.bytes(&sp.prf_key);
        zeroize::Zeroizing::new(w.buf)
    }

    /// Decodes [`MasterSecretKey::to_bytes`] output (native version 2, or 1: the body
    /// is the same).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        check_header(&mut r, TYPE_MSK)?;
        let a = read_matrix::<3>(&mut r)?;
        let wta = read_matrix::<4>(&mut r)?;
        let bstar = read_matrix::<4>(&mut r)?;
        let bstar12 = read_matrix::<4>(&mut r)?;
        let k = read_scalars::<4>(&mut r)?;
        let n = usize::from(r.u8()?);
        if n == 0 || n > 64 {
            return Err(Error::Malformed("PRF key must be 1 to 64 bytes"));
        }
        let prf_key = r.take(n)?.to_vec();
        r.finish()?;
        Ok(MasterSecretKey {
            sp: SecretParams {
                a,
                wta,
                bstar,
                bstar12,
                k,
                prf_key,
            },
        })
    }
}

const KEY_TAME_TEXT: u8 = 0;
const KEY_TAME_SCALAR: u8 = 1;
const KEY_WILD: u8 = 2;

impl AttributeKey {
    /// Native encoding. The result is secret: store it as such.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let km = &self.km;
        let mut w = Writer::default();
        header(&mut w, TYPE_KEY, NATIVE_VERSION);
        km.k1.iter().for_each(|p| g2(&mut w, p));
        km.k2.iter().for_each(|p| g1(&mut w, p));
        w.u16_be(km.attrs.len() as u16);
        for (label, a) in &km.attrs {
            w.str16_be(label);
            match (&a.raw, a.wild) {
                (_, true) => w.u8(KEY_WILD),
                (Some(raw), false) => {
                    w.u8(KEY_TAME_TEXT);
                    w.str16_be(raw);
                }
                (None, false) => {
                    w.u8(KEY_TAME_SCALAR);
                    w.bytes(&a.value.to_bytes_be());
                }
            }
            if let Some(k3) = km.k3.get(label) {
                k3.iter().for_each(|p| g1(&mut w, p));
            }
            if let Some(kw) = km.k3wild.get(label) {
                kw.iter().for_each(|p| g1(&mut w, p));
            }
        }
        zeroize::Zeroizing::new(w.buf)
    }

    /// Decodes [`AttributeKey::to_bytes`] output (native version 2, or 1).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let version = check_header(&mut r, TYPE_KEY)?;
        let k1 = read_g2s::<3>(&mut r)?;
        let k2 = read_g1s::<4>(&mut r)?;
        let n = r.u16_be()?;
        if usize::from(n) > MAX_ATTRIBUTES + 1 {
            return Err(Error::Malformed("too many attributes in key"));
        }
        let mut attrs = BTreeMap::new();
        let mut k3 = BTreeMap::new();
        let mut k3wild = BTreeMap::new();
        let mut last: Option<String> = None;
        for _ in 0..n {
            let label = read_text(&mut r, version)?;
            if last.as_ref().is_some_and(|l| *l >= label) {
                return Err(Error::Malformed("key labels not strictly increasing"));
            }
            let kind = r.u8()?;
            let attr = match kind {
                KEY_WILD if label == BK_LABEL => KeyAttr {
                    value: Scalar::default(),
                    wild: true,
                    raw: None,
                },
                KEY_TAME_TEXT | KEY_TAME_SCALAR => {
                    if !name_ok(version, &label) {
                        return Err(INVALID_TEXT);
                    }
                    if kind == KEY_TAME_TEXT {
                        let raw = read_value(&mut r, version)?;
                        KeyAttr {
                            value: hash_value(&raw),
                            wild: false,
                            raw: Some(raw),
                        }
                    } else {
                        KeyAttr {
                            value: read_scalar(&mut r)?,
                            wild: false,
                            raw: None,
                        }
                    }
                }
                _ => return Err(Error::Malformed("unknown attribute kind")),
            };
            k3.insert(label.clone(), read_g1s::<4>(&mut r)?);
            if attr.wild {
                k3wild.insert(label.clone(), read_g1s::<4>(&mut r)?);
            }
            attrs.insert(label.clone(), attr);
            last = Some(label);
        }
        r.finish()?;
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

fn write_formula(w: &mut Writer, version: u8, f: &Formula) {
    fn walk(w: &mut Writer, version: u8, g: &Gate, f: &Formula) {
        match g {
            Gate::And(a, b) | Gate::Or(a, b) => {
                w.u8(if matches!(g, Gate::And(..)) {
                    TAG_AND
                } else {
                    TAG_OR
                });
                walk(w, version, a, f);
                walk(w, version, b, f);
            }
            Gate::Leaf(i) => {
                let wire = &f.wires[*i];
                w.u8(if wire.positive { TAG_POS } else { TAG_NEG });
                write_text(w, version, &wire.label);
                write_text(w, version, &wire.raw);
            }
        }
    }
    walk(w, version, &f.root, f);
}

/// Everything of a native ciphertext of `version` before the sealed payload: prefix,
/// `id`, policy and the ABE header. It is the AES-GCM associated data.
pub(crate) fn native_ciphertext_prefix(version: u8, id: &[u8; ID_LEN], h: &Header) -> Vec<u8> {
    let mut w = Writer::default();
    header(&mut w, TYPE_CT, version);
    w.bytes(id);
    write_formula(&mut w, version, &h.formula);
    h.c1.iter().for_each(|p| g2(&mut w, p));
    w.u16_be(h.c2.len() as u16);
    h.c2.iter().flatten().for_each(|p| g2(&mut w, p));
    for (c3, neg) in h.c3.iter().zip(&h.c3neg) {
        c3.iter().for_each(|p| g1(&mut w, p));
        if let Some(neg) = neg {
            neg.iter().for_each(|p| g1(&mut w, p));
        }
    }
    w.buf
}

/// The bytes the HMAC tag covers: the prefix followed by the length-framed sealed payload.
pub(crate) fn native_mac_input(mut prefix: Vec<u8>, sealed: &[u8]) -> Vec<u8> {
    prefix.extend_from_slice(&(sealed.len() as u32).to_be_bytes());
    prefix.extend_from_slice(sealed);
    prefix
}

impl Ciphertext {
    /// Encodes the ciphertext in its own format: keyfence native (in the version it was
    /// made in: its MAC covers the encoding), or CIRCL's for ciphertexts read with
    /// [`Ciphertext::from_circl_bytes`] or made by [`MasterPublicKey::encrypt_circl`].
    pub fn to_bytes(&self) -> Vec<u8> {
        match &self.payload {
            Payload::Native {
                version,
                id,
                sealed,
                tag,
            } => {
                let prefix = native_ciphertext_prefix(*version, id, &self.header);
                let mut out = native_mac_input(prefix, sealed);
                out.extend_from_slice(tag);
                out
            }
            Payload::Circl(p) => crate::circl::ciphertext_bytes(&self.header, p),
        }
    }

    /// Decodes a native ciphertext ([`Ciphertext::to_bytes`] of a native ciphertext),
    /// of version 2 or 1.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let version = check_header(&mut r, TYPE_CT)?;
        let id: [u8; ID_LEN] = r.array()?;
        let policy = read_policy_tree(&mut r, version)?;
        let formula = Formula::from_policy(&policy);
        let augmented = formula.with_identity(Scalar::default());
        let pi = augmented.repetition_indices();
        let d = pi.iter().copied().max().unwrap_or(0) + 1;
        let c1 = read_g2s::<4>(&mut r)?;
        if usize::from(r.u16_be()?) != d {
            return Err(Error::Malformed("wrong number of c2 components"));
        }
        let mut c2 = Vec::with_capacity(d);
        for _ in 0..d {
            c2.push(read_g2s::<4>(&mut r)?);
        }
        let mut c3 = Vec::with_capacity(augmented.wires.len());
        let mut c3neg = Vec::with_capacity(augmented.wires.len());
        for wire in &augmented.wires {
            c3.push(read_g1s::<3>(&mut r)?);
            c3neg.push(if wire.positive {
                None
            } else {
                Some(read_g1s::<3>(&mut r)?)
            });
        }
        let len = r.u32_be()? as usize;
        if len < SEED_LEN + 16 || len.checked_add(32) != Some(r.remaining()) {
            return Err(Error::Malformed("sealed payload length"));
        }
        let sealed = r.take(len)?.to_vec();
        let tag: [u8; 32] = r.array()?;
        r.finish()?;
        Ok(Ciphertext {
            header: Header {
                formula,
                c1,
                c2,
                c3,
                c3neg,
            },
            payload: Payload::Native {
                version,
                id,
                sealed,
                tag,
            },
        })
    }
}
