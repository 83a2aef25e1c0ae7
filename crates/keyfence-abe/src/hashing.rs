//! Hashing into the scheme's groups: attribute values to scalars, attribute labels to
//! G1 points (the random oracle of TKN20), and the per-label PRF of the master key.
//!
//! These are exactly the constructions CIRCL's `tkn20` uses, so that keys and
//! ciphertexts interoperate: BLAKE2X-b (keyed) read through Go's `crypto/rand.Int`
//! rejection sampler for scalars, and RFC 9380 `hash_to_curve` (SSWU, XMD:SHA-256)
//! with CIRCL's domain separation tags for label points.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use blake2b_simd::Params;
use blstrs::{G1Affine, G1Projective, Scalar};
use ff::Field;
use group::{Curve, Group};
use zeroize::Zeroize;

/// Key of the keyed BLAKE2X-b that maps attribute values to scalars (CIRCL's `AttrHashKey`).
const VALUE_HASH_KEY: &[u8] = b"attribute value hashing";
/// BLAKE2X "unknown output length" marker (2^32 - 1).
const XOF_UNKNOWN_LENGTH: u64 = 0xFFFF_FFFF;

/// BLAKE2X-b extendable-output function with unknown output length, as specified in
/// "BLAKE2X" (Aumasson et al., 2016) and implemented by Go's `x/crypto/blake2b.NewXOF`.
///
/// The root hash is a (keyed) BLAKE2b-512 whose parameter block carries the XOF length;
/// output block `i` is an unkeyed BLAKE2b-512 of the root with node offset `i`, leaf and
/// inner length 64 and fanout/depth 0. The BLAKE2b compression itself is blake2b_simd's.
pub(crate) struct Blake2x {
    root: [u8; 64],
    block: [u8; 64],
    next_node: u32,
    used: usize,
}

impl Blake2x {
    /// Absorbs the concatenation of `parts` under `key` (at most 64 bytes).
    pub(crate) fn new(key: &[u8], parts: &[&[u8]]) -> Self {
        let mut state = Params::new()
            .hash_length(64)
            .key(key)
            .node_offset(XOF_UNKNOWN_LENGTH << 32)
            .to_state();
        for part in parts {
            state.update(part);
        }
        let mut root = [0u8; 64];
        root.copy_from_slice(state.finalize().as_bytes());
        Blake2x {
            root,
            block: [0u8; 64],
            next_node: 0,
            used: 64,
        }
    }

    fn refill(&mut self) {
        let out = Params::new()
            .hash_length(64)
            .fanout(0)
            .max_depth(0)
            .max_leaf_length(64)
            .node_offset(u64::from(self.next_node) | (XOF_UNKNOWN_LENGTH << 32))
            .node_depth(0)
            .inner_hash_length(64)
            .hash(&self.root);
        self.block.copy_from_slice(out.as_bytes());
        self.next_node = self.next_node.wrapping_add(1);
        self.used = 0;
    }

    /// Fills `out` with the next bytes of the output stream.
    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        for byte in out.iter_mut() {
            if self.used == 64 {
                self.refill();
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
    }

    /// Samples a scalar the way CIRCL's `Scalar.Random` does: Go's
    /// `crypto/rand.Int(r, order)` (read 32 bytes, clear the top bit since the order has
    /// 255 bits, accept when below the order) yields an integer `v` that CIRCL stores
    /// directly as Montgomery limbs, so the scalar's value is `v * 2^-256 mod r`.
    pub(crate) fn scalar(&mut self) -> Scalar {
        static MONTGOMERY_INV: OnceLock<Scalar> = OnceLock::new();
        let r_inv = MONTGOMERY_INV.get_or_init(|| {
            let two_256 = (0..256).fold(Scalar::ONE, |acc, _| acc.double());
            Option::from(two_256.invert()).unwrap_or(Scalar::ONE)
        });
        self.integer_below_order() * r_inv
    }

    fn integer_below_order(&mut self) -> Scalar {
        loop {
            let mut bytes = [0u8; 32];
            self.fill(&mut bytes);
            bytes[0] &= 0x7f;
            let candidate = Scalar::from_bytes_be(&bytes);
            bytes.zeroize();
            if let Some(s) = Option::<Scalar>::from(candidate) {
                return s;
            }
        }
    }
}

impl Drop for Blake2x {
    fn drop(&mut self) {
        self.root.zeroize();
        self.block.zeroize();
    }
}

/// Maps an attribute value (the text after `name:`) to its scalar.
pub(crate) fn hash_value(value: &str) -> Scalar {
    Blake2x::new(VALUE_HASH_KEY, &[value.as_bytes()]).scalar()
}

/// The two 3x2 matrices of G1 points the random oracle assigns to an attribute label.
#[derive(Clone, Debug)]
pub(crate) struct LabelPoints {
    /// `U0`: multiplied by the attribute value.
    pub(crate) u0: [[G1Affine; 2]; 3],
    /// `U1`: the constant term.
    pub(crate) u1: [[G1Affine; 2]; 3],
}

/// Upper bound on cached labels; the cache is cleared when it is reached.
const LABEL_CACHE_CAPACITY: usize = 4096;

fn label_cache() -> &'static Mutex<HashMap<String, Arc<LabelPoints>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<LabelPoints>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn compute_label_points(label: &str) -> LabelPoints {
    let mut proj = [G1Projective::identity(); 12];
    for i in 0..3 {
        for j in 0..2 {
            let a_dst = format!("a matrix entry [{i}, {j}]");
            let b_dst = format!("b matrix entry [{i}, {j}]");
            proj[2 * i + j] = G1Projective::hash_to_curve(label.as_bytes(), a_dst.as_bytes(), &[]);
            proj[6 + 2 * i + j] =
                G1Projective::hash_to_curve(label.as_bytes(), b_dst.as_bytes(), &[]);
        }
    }
    let mut affine = [G1Affine::default(); 12];
    G1Projective::batch_normalize(&proj, &mut affine);
    let m = |off: usize| {
        [
            [affine[off], affine[off + 1]],
            [affine[off + 2], affine[off + 3]],
            [affine[off + 4], affine[off + 5]],
        ]
    };
    LabelPoints { u0: m(0), u1: m(6) }
}

/// Returns the oracle points of `label`, from a process-wide cache when possible.
///
/// Labels and their points are public, so caching leaks nothing.
pub(crate) fn label_points(label: &str) -> Arc<LabelPoints> {
    if let Ok(cache) = label_cache().lock() {
        if let Some(points) = cache.get(label) {
            return Arc::clone(points);
        }
    }
    let points = Arc::new(compute_label_points(label));
    if let Ok(mut cache) = label_cache().lock() {
        if cache.len() >= LABEL_CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(label.to_owned(), Arc::clone(&points));
    }
    points
}

/// `P = x U0 + U1` for a label and a hashed value: the point matrix a literal
/// `label: value` contributes to ciphertexts and keys.
pub(crate) type ValuePoints = [[G1Affine; 2]; 3];

/// Cache of [`value_points`], keyed by label and big-endian value.
type ValueCache = Mutex<HashMap<(String, [u8; 32]), Arc<ValuePoints>>>;

fn value_cache() -> &'static ValueCache {
    static CACHE: OnceLock<ValueCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Computes `x U0 + U1` for `label` and value `x` (label points from the cache).
pub(crate) fn compute_value_points(label: &str, x: &Scalar) -> ValuePoints {
    let lp = label_points(label);
    let proj: [G1Projective; 6] = core::array::from_fn(|n| {
        let (i, j) = (n / 2, n % 2);
        G1Projective::from(lp.u0[i][j]) * x + lp.u1[i][j]
    });
    let mut aff = [G1Affine::default(); 6];
    G1Projective::batch_normalize(&proj, &mut aff);
    [[aff[0], aff[1]], [aff[2], aff[3]], [aff[4], aff[5]]]
}

/// Returns `x U0 + U1` for `label` and value `x`, from a process-wide cache when
/// possible. Both inputs are public, so caching leaks nothing.
pub(crate) fn value_points(label: &str, x: &Scalar) -> Arc<ValuePoints> {
    let key = (label.to_owned(), x.to_bytes_be());
    if let Ok(cache) = value_cache().lock() {
        if let Some(points) = cache.get(&key) {
            return Arc::clone(points);
        }
    }
    let points = Arc::new(compute_value_points(label, x));
    if let Ok(mut cache) = value_cache().lock() {
        if cache.len() >= LABEL_CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&points));
    }
    points
}

/// The master key's PRF: two secret 3x2 scalar matrices `(V0, V1)` per label.
pub(crate) fn prf(key: &[u8], label: &str) -> ([[Scalar; 2]; 3], [[Scalar; 2]; 3]) {
    let mut v0 = [[Scalar::default(); 2]; 3];
    let mut v1 = [[Scalar::default(); 2]; 3];
    for i in 0..3 {
        for j in 0..2 {
            let t0 = format!("m1 matrix entry ({i}, {j})");
            let t1 = format!("m2 matrix entry ({i}, {j})");
            v0[i][j] = Blake2x::new(key, &[label.as_bytes(), t0.as_bytes()]).scalar();
            v1[i][j] = Blake2x::new(key, &[label.as_bytes(), t1.as_bytes()]).scalar();
        }
    }
    (v0, v1)
}

/// Hashes arbitrary bytes to a scalar under a domain-separation key.
pub(crate) fn hash_to_scalar(domain: &[u8], data: &[u8]) -> Scalar {
    Blake2x::new(domain, &[data]).scalar()
}
