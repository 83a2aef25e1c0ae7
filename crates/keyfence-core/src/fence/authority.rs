//! The authority: the CP-ABE master keys (by generation), the signing key every
//! node trusts, and the operations that enroll nodes and make and rotate fences.
//!
//! # What the authority can and cannot do
//!
//! The authority is the root of the fencing scheme, and it is all-powerful
//! over fences by construction:
//!
//! - It holds every live CP-ABE master secret key, so it can issue an
//!   attribute key for any attributes to anyone.
//! - It must hand `s_policy` to nodes that join after a fence was made, so it
//!   keeps a copy: each record carries an *authority envelope*, encrypted to
//!   the authority's own X-Wing key, holding `s_policy` and the policy private
//!   key. That copy is also how it re-wraps backing keys on a fence rotation
//!   and re-seals private halves on a master rotation. Hence it can open every
//!   fence and, given the wrapped backing keys, every fenced key.
//! - It decides which attributes a node gets; a lying authority fences nothing.
//!
//! So the authority's secret state ([`Authority::to_bytes`]) must be sealed
//! under the root of trust and held by one node (`authority = true`) or
//! offline, and its commands later need an M-of-N operator quorum.
//!
//! What it cannot do: sign as a node (it never holds a node's identity key),
//! read anything a node encrypts to another node, or make a node forget what
//! it already opened: a removed node keeps the policy private keys and backing
//! keys it cached. Rotation makes sure it opens nothing *new*: after
//! [`Authority::rotate_fence`] it gets no envelope for the new `s_policy`, so
//! even an attribute key that still satisfies the policy opens nothing, and
//! backing keys re-wrapped under the new policy key are out of its reach (the
//! backing keys themselves are unchanged; rotating a KMS key's material is a
//! separate, customer-visible act).
//!
//! A store that can be written to cannot make the authority or a node trust a
//! forged member or public half: grants and fence records are signed with the
//! authority's ML-DSA-65 key and checked before use.

use std::fmt;

use keyfence_abe::{setup, Attributes, MasterPublicKey, MasterSecretKey, Policy};
use keyfence_crypto::asym::xwing::{XWingPrivateKey, PRIVATE_KEY_LEN};
use keyfence_crypto::asym::PrivateKey;
use keyfence_crypto::Secret;
use zeroize::Zeroizing;

use super::codec::{ty, Reader, Writer};
use super::grant::{
    attribute_key_aad, AuthorityPublic, GrantedKey, NodeGrant, ATTRIBUTE_KEY_PURPOSE,
};
use super::identity::JoinRequest;
use super::keyring::{unwrap_backing_key, wrap_backing_key, PolicyPrivateKey};
use super::record::{
    authority_aad, normalize_policy, s_policy_aad, FenceId, FenceRecord, GenerationEntry,
    NodeEnvelope, SealPlace, AUTHORITY_PURPOSE, SECRET_LEN, S_POLICY_PURPOSE,
};
use super::rng::AwsLcRng;
use super::{envelope, sign, FenceError};

/// One generation of the CP-ABE master key pair.
struct MasterGeneration {
    generation: u32,
    public: MasterPublicKey,
    secret: MasterSecretKey,
}

/// The authority's secrets. `Debug` shows generations only.
pub struct Authority {
    signing: PrivateKey,
    public: AuthorityPublic,
    kem: XWingPrivateKey,
    /// Live generations, ascending; the last is active (encrypts), the others
    /// still decrypt until retired. Never empty.
    masters: Vec<MasterGeneration>,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Authority(generations {:?}, [REDACTED])",
            self.generations()
        )
    }
}

/// What [`Authority::approve`] returns: the node's grant and the records of
/// the existing fences the node satisfies, each with an `s_policy` envelope
/// for the node added (store all of them).
#[derive(Debug)]
pub struct Approval {
    /// The node's grant.
    pub grant: NodeGrant,
    /// The updated records of the fences the node can now open.
    pub fences: Vec<FenceRecord>,
}

/// What [`Authority::rotate_fence`] returns: the new record (next epoch, new
/// policy key pair and `s_policy`) and the backing keys re-wrapped under it,
/// in the order given.
#[derive(Debug)]
pub struct FenceRotation {
    /// The new record, replacing the old one.
    pub record: FenceRecord,
    /// The re-wrapped backing keys, in input order.
    pub rewrapped: Vec<Vec<u8>>,
}

/// Re-wraps backing keys wrapped under a fence's previous epoch under its
/// current one ([`Authority::rewrapper`]): the sweep after a fence rotation,
/// which can be run again until no key is left behind. `Debug` shows the
/// fence and epoch only.
pub struct Rewrapper {
    current: PolicyPrivateKey,
    previous: Option<PolicyPrivateKey>,
}

impl fmt::Debug for Rewrapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Rewrapper({} to epoch {}, [REDACTED])",
            self.current.fence, self.current.epoch
        )
    }
}

impl Rewrapper {
    /// The fence.
    pub fn fence(&self) -> FenceId {
        self.current.fence
    }

    /// The epoch keys are re-wrapped to.
    pub fn epoch(&self) -> u32 {
        self.current.epoch
    }

    /// Re-wraps one backing key (with the AAD it was wrapped with): `None` if
    /// it is already under the current epoch, the new wrapping if it was
    /// under the previous one, [`FenceError::WrongPolicyKey`] for any other
    /// fence or epoch.
    pub fn rewrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Option<Vec<u8>>, FenceError> {
        let (fence, epoch) = super::keyring::wrapped_key_fence(wrapped)?;
        if fence == self.current.fence && epoch == self.current.epoch {
            return Ok(None);
        }
        let old = self
            .previous
            .as_ref()
            .filter(|p| p.fence == fence && p.epoch == epoch)
            .ok_or(FenceError::WrongPolicyKey {
                fence: self.current.fence,
                epoch: self.current.epoch,
                found: fence,
                found_epoch: epoch,
            })?;
        let material = unwrap_backing_key(old, wrapped, aad)?;
        wrap_backing_key(&self.current.public(), material.expose(), aad).map(Some)
    }
}

/// One `(wrapped backing key, its AAD)` to carry across a fence rotation.
pub type WrappedKeyRef<'a> = (&'a [u8], &'a [u8]);

fn abe_err(e: keyfence_abe::Error) -> FenceError {
    FenceError::Abe(e)
}

fn new_master(generation: u32) -> Result<MasterGeneration, FenceError> {
    let mut rng = AwsLcRng::default();
    let (public, secret) = setup(&mut rng);
    rng.check()?;
    Ok(MasterGeneration {
        generation,
        public,
        secret,
    })
}

impl Authority {
    /// A new authority: fresh signing and KEM keys and master generation 1.
    pub fn new() -> Result<Self, FenceError> {
        let signing = sign::generate()?;
        let public = AuthorityPublic::new(signing.public_key_der()?);
        Ok(Self {
            signing,
            public,
            kem: XWingPrivateKey::generate()?,
            masters: vec![new_master(1)?],
        })
    }

    /// The public key nodes check grants and records against.
    pub fn public(&self) -> &AuthorityPublic {
        &self.public
    }

    /// The active master generation (the one new ciphertexts use).
    pub fn generation(&self) -> u32 {
        self.active().generation
    }

    /// Every live master generation, ascending.
    pub fn generations(&self) -> Vec<u32> {
        self.masters.iter().map(|m| m.generation).collect()
    }

    fn active(&self) -> &MasterGeneration {
        // `masters` is never empty: made with one, and the active one cannot be retired.
        &self.masters[self.masters.len() - 1]
    }

    /// The master secret key of the active generation: for tests that play an
    /// attacker who broke the pairing assumption.
    #[cfg(test)]
    pub(crate) fn active_master_secret(&self) -> &MasterSecretKey {
        &self.active().secret
    }

    /// Approves a join: checks the request's signature, issues an attribute key
    /// for `approved` under every live generation, encrypted to the node's KEM
    /// key, and adds an `s_policy` envelope for the node to each of `fences`
    /// whose policy `approved` satisfies. Records it does not satisfy are left
    /// out of the answer. To change a node's attributes, rotate the fences it
    /// could open without it ([`Authority::rotate_fence`]) and approve it anew.
    pub fn approve(
        &self,
        request: &JoinRequest,
        approved: Attributes,
        fences: &[FenceRecord],
    ) -> Result<Approval, FenceError> {
        let node = request.verify()?.clone();
        let mut keys = Vec::with_capacity(self.masters.len());
        for m in &self.masters {
            keys.push(self.grant_key(m, node.name(), node.kem_public(), &approved)?);
        }
        let grant = self.sign_grant(NodeGrant {
            node,
            approved,
            keys,
            tls: None,
            signature: Vec::new(),
        })?;
        let mut updated = Vec::new();
        for record in fences {
            let (policy, s_policy, _) = self.open_record(record)?;
            if !policy.satisfied_by(&grant.approved) {
                continue;
            }
            let mut record = record.clone();
            let envelope = envelope::seal(
                grant.node.kem_public(),
                S_POLICY_PURPOSE,
                &s_policy_aad(record.id, record.epoch, grant.name()),
                s_policy.expose(),
            )?;
            match record
                .envelopes
                .binary_search_by(|e| e.node.as_str().cmp(grant.name()))
            {
                Ok(i) => record.envelopes[i].envelope = envelope,
                Err(i) => record.envelopes.insert(
                    i,
                    NodeEnvelope {
                        node: grant.name().to_owned(),
                        envelope,
                    },
                ),
            }
            updated.push(self.sign_record(record)?);
        }
        Ok(Approval {
            grant,
            fences: updated,
        })
    }

    fn grant_key(
        &self,
        master: &MasterGeneration,
        node: &str,
        kem_public: &[u8],
        approved: &Attributes,
    ) -> Result<GrantedKey, FenceError> {
        let mut rng = AwsLcRng::default();
        let key = master.secret.keygen(approved, &mut rng);
        rng.check()?;
        let envelope = envelope::seal(
            kem_public,
            ATTRIBUTE_KEY_PURPOSE,
            &attribute_key_aad(node, master.generation),
            &key.to_bytes(),
        )?;
        Ok(GrantedKey {
            generation: master.generation,
            envelope,
        })
    }

    /// Re-issues a grant with an attribute key for exactly the live generations
    /// (keeping the keys it already has for those, adding the active one after
    /// [`Authority::rotate_master`], dropping retired ones).
    pub fn refresh_grant(&self, grant: &NodeGrant) -> Result<NodeGrant, FenceError> {
        grant.verify(&self.public)?;
        let mut keys = Vec::with_capacity(self.masters.len());
        for m in &self.masters {
            match grant.keys.iter().find(|k| k.generation == m.generation) {
                Some(k) => keys.push(k.clone()),
                None => keys.push(self.grant_key(
                    m,
                    grant.name(),
                    grant.node.kem_public(),
                    &grant.approved,
                )?),
            }
        }
        self.sign_grant(NodeGrant {
            keys,
            signature: Vec::new(),
            ..grant.clone()
        })
    }

    /// Adds a node certificate to a grant this authority signed: the
    /// certificate (DER) in clear, its private key (PKCS#8 DER) encrypted to
    /// the node's KEM key; re-signed. Peers pin the node to exactly this
    /// certificate for mutual TLS (see [`NodeGrant::tls_certificate`]).
    pub fn issue_tls(
        &self,
        grant: &NodeGrant,
        certificate: &[u8],
        private_key: &[u8],
    ) -> Result<NodeGrant, FenceError> {
        grant.verify(&self.public)?;
        self.sign_grant(grant.with_tls(certificate, private_key)?)
    }

    pub(crate) fn sign_grant(&self, mut grant: NodeGrant) -> Result<NodeGrant, FenceError> {
        grant.signature = sign::sign(&self.signing, sign::GRANT, &grant.body())?;
        Ok(grant)
    }

    /// Makes the fence for `policy` (normalized first): a fresh X-Wing policy
    /// key pair, a fresh `s_policy` encrypted to the KEM key of every member
    /// whose approved attributes satisfy the policy, and for every live
    /// generation a fresh `k_abe` CP-ABE-encrypted under the policy with the
    /// private half sealed under `HKDF(k_abe ‖ s_policy)`. Members are grants
    /// this authority signed (checked).
    pub fn create_fence(
        &self,
        policy: &str,
        members: &[NodeGrant],
    ) -> Result<FenceRecord, FenceError> {
        let (policy, canonical) = normalize_policy(policy)?;
        let id = FenceId::of_policy(&canonical)?;
        self.build_record(id, &policy, canonical, 1, members, None)
            .map(|(record, _)| record)
    }

    /// A record of epoch `epoch` with a fresh key pair and `s_policy`. The
    /// authority's envelope also carries `predecessor` (the previous epoch's
    /// private half), so backing keys still wrapped under it can be re-wrapped
    /// from the new record alone, even after a crash halfway through.
    fn build_record(
        &self,
        id: FenceId,
        policy: &Policy,
        canonical: String,
        epoch: u32,
        members: &[NodeGrant],
        predecessor: Option<&PolicyPrivateKey>,
    ) -> Result<(FenceRecord, PolicyPrivateKey), FenceError> {
        let s_policy = Secret::random(SECRET_LEN)?;
        let key = XWingPrivateKey::generate()?;
        let mut secret = Zeroizing::new(Vec::with_capacity(SECRET_LEN + 2 * PRIVATE_KEY_LEN));
        secret.extend_from_slice(s_policy.expose());
        secret.extend_from_slice(key.to_bytes());
        if let Some(previous) = predecessor {
            secret.extend_from_slice(previous.key.to_bytes());
        }
        let authority_envelope = envelope::seal(
            self.kem.public_key(),
            AUTHORITY_PURPOSE,
            &authority_aad(id, epoch, &canonical),
            &secret,
        )?;
        let mut envelopes = Vec::new();
        for grant in members {
            grant.verify(&self.public)?;
            if !policy.satisfied_by(&grant.approved) {
                continue;
            }
            envelopes.push(NodeEnvelope {
                node: grant.name().to_owned(),
                envelope: envelope::seal(
                    grant.node.kem_public(),
                    S_POLICY_PURPOSE,
                    &s_policy_aad(id, epoch, grant.name()),
                    s_policy.expose(),
                )?,
            });
        }
        envelopes.sort_by(|a, b| a.node.cmp(&b.node));
        if envelopes.windows(2).any(|w| w[0].node == w[1].node) {
            return Err(FenceError::Conflict(
                "two members share a node name".to_owned(),
            ));
        }
        let mut record = FenceRecord {
            id,
            policy: canonical,
            epoch,
            public_key: key.public_key().to_vec(),
            authority_envelope,
            generations: Vec::new(),
            envelopes,
            signature: Vec::new(),
        };
        record.generations = self.entries(&record, policy, &s_policy, &key, &[])?;
        let private = PolicyPrivateKey::load(&record, key.to_bytes())?;
        Ok((self.sign_record(record)?, private))
    }

    /// One entry per live generation: kept from `existing` when present,
    /// otherwise a fresh `k_abe` under that generation's master public key.
    fn entries(
        &self,
        record: &FenceRecord,
        policy: &Policy,
        s_policy: &Secret,
        key: &XWingPrivateKey,
        existing: &[GenerationEntry],
    ) -> Result<Vec<GenerationEntry>, FenceError> {
        let mut out = Vec::with_capacity(self.masters.len());
        for m in &self.masters {
            if let Some(e) = existing.iter().find(|e| e.generation == m.generation) {
                out.push(e.clone());
                continue;
            }
            let k_abe = Secret::random(SECRET_LEN)?;
            let mut rng = AwsLcRng::default();
            let abe = m.public.encrypt(policy, k_abe.expose(), &mut rng);
            rng.check()?;
            let place = SealPlace {
                fence: record.id,
                generation: m.generation,
                epoch: record.epoch,
                policy: &record.policy,
            };
            out.push(GenerationEntry {
                generation: m.generation,
                abe_ciphertext: abe.map_err(abe_err)?.to_bytes(),
                sealed_private: place.seal(&k_abe, s_policy, key.to_bytes())?,
            });
        }
        Ok(out)
    }

    pub(crate) fn sign_record(&self, mut record: FenceRecord) -> Result<FenceRecord, FenceError> {
        record.signature = sign::sign(&self.signing, sign::RECORD, &record.body())?;
        Ok(record)
    }

    /// Checks a record and opens the authority's envelope: (policy, s_policy,
    /// policy private key).
    fn open_record(
        &self,
        record: &FenceRecord,
    ) -> Result<(Policy, Secret, PolicyPrivateKey), FenceError> {
        self.open_record_chain(record)
            .map(|(policy, s, key, _)| (policy, s, key))
    }

    /// [`Self::open_record`] with the previous epoch's private half, if the
    /// record was made by a rotation.
    fn open_record_chain(
        &self,
        record: &FenceRecord,
    ) -> Result<(Policy, Secret, PolicyPrivateKey, Option<PolicyPrivateKey>), FenceError> {
        record.verify(&self.public)?;
        let (policy, _) = normalize_policy(&record.policy)?;
        let secret = envelope::open(
            &self.kem,
            AUTHORITY_PURPOSE,
            &authority_aad(record.id, record.epoch, &record.policy),
            &record.authority_envelope,
            "authority envelope",
        )?;
        let unauthentic = FenceError::Unauthentic {
            what: "authority envelope",
        };
        let with_predecessor = SECRET_LEN + 2 * PRIVATE_KEY_LEN;
        if secret.len() != SECRET_LEN + PRIVATE_KEY_LEN
            && !(secret.len() == with_predecessor && record.epoch > 1)
        {
            return Err(unauthentic);
        }
        let (s, rest) = secret.expose().split_at(SECRET_LEN);
        let (k, previous) = rest.split_at(PRIVATE_KEY_LEN);
        let private = PolicyPrivateKey::load(record, k)?;
        let predecessor = if previous.is_empty() {
            None
        } else {
            let key =
                XWingPrivateKey::from_bytes(previous).map_err(|_| FenceError::Unauthentic {
                    what: "authority envelope",
                })?;
            Some(PolicyPrivateKey {
                fence: record.id,
                epoch: record.epoch - 1,
                policy: record.policy.clone(),
                key,
            })
        };
        Ok((policy, Secret::new(s.to_vec()), private, predecessor))
    }

    /// What re-wraps the backing keys of `record`'s fence that are still
    /// wrapped under its previous epoch: the previous private half (carried in
    /// the authority's envelope by [`Self::rotate_fence`]) and the current one.
    pub fn rewrapper(&self, record: &FenceRecord) -> Result<Rewrapper, FenceError> {
        let (_, _, current, previous) = self.open_record_chain(record)?;
        Ok(Rewrapper { current, previous })
    }

    /// Opens a fence's policy private key with the authority's own copy (see
    /// the module documentation: the authority can open every fence).
    pub fn open_fence(&self, record: &FenceRecord) -> Result<PolicyPrivateKey, FenceError> {
        self.open_record(record).map(|(_, _, key)| key)
    }

    /// Rotates a fence for a membership change: the next epoch, a new policy
    /// key pair and a new `s_policy` encrypted only to the `members` (grants
    /// signed by this authority) that satisfy the policy, `k_abe` fresh under
    /// every live generation; and every `(wrapped, aad)` backing key unwrapped
    /// with the old private key (the authority's copy) and re-wrapped under
    /// the new public half. A node left out of `members` gets no envelope, so
    /// whatever its attributes it opens nothing under the new record.
    pub fn rotate_fence(
        &self,
        record: &FenceRecord,
        members: &[NodeGrant],
        wrapped: &[WrappedKeyRef<'_>],
    ) -> Result<FenceRotation, FenceError> {
        let (policy, _, old) = self.open_record(record)?;
        let epoch = record
            .epoch
            .checked_add(1)
            .ok_or_else(|| FenceError::Conflict("fence epoch exhausted".to_owned()))?;
        let (new_record, new) = self.build_record(
            record.id,
            &policy,
            record.policy.clone(),
            epoch,
            members,
            Some(&old),
        )?;
        let public = new.public();
        let mut rewrapped = Vec::with_capacity(wrapped.len());
        for (bytes, aad) in wrapped {
            let material = unwrap_backing_key(&old, bytes, aad)?;
            rewrapped.push(wrap_backing_key(&public, material.expose(), aad)?);
        }
        Ok(FenceRotation {
            record: new_record,
            rewrapped,
        })
    }

    /// Starts a new master generation and makes it active; returns its number.
    /// Then [`Authority::refresh_fence`] every record (re-encrypts `k_abe` and
    /// re-seals the private half: policy keys only, never backing keys) and
    /// [`Authority::refresh_grant`] every node. The previous generations keep
    /// decrypting until [`Authority::retire_generation`].
    pub fn rotate_master(&mut self) -> Result<u32, FenceError> {
        let generation = self
            .generation()
            .checked_add(1)
            .ok_or_else(|| FenceError::Conflict("master generation exhausted".to_owned()))?;
        self.masters.push(new_master(generation)?);
        Ok(generation)
    }

    /// Brings a record to exactly the live generations: keeps its entries for
    /// them, adds a fresh `k_abe` and sealed private half for any it lacks
    /// (after [`Authority::rotate_master`]), drops retired ones. The policy key
    /// pair, `s_policy`, the node envelopes and the epoch are unchanged, so
    /// every backing key wrapped under the fence stays as it is.
    pub fn refresh_fence(&self, record: &FenceRecord) -> Result<FenceRecord, FenceError> {
        let (policy, s_policy, private) = self.open_record(record)?;
        let mut out = record.clone();
        out.generations = self.entries(
            record,
            &policy,
            &s_policy,
            &private.key,
            &record.generations,
        )?;
        self.sign_record(out)
    }

    /// Destroys the master keys of `generation`, which must not be the active
    /// one. Refresh records and grants afterwards to drop its ciphertexts.
    pub fn retire_generation(&mut self, generation: u32) -> Result<(), FenceError> {
        if generation == self.generation() {
            return Err(FenceError::Conflict(
                "the active master generation cannot be retired".to_owned(),
            ));
        }
        let before = self.masters.len();
        self.masters.retain(|m| m.generation != generation);
        if self.masters.len() == before {
            return Err(FenceError::UnknownGeneration(generation));
        }
        Ok(())
    }

    /// Secret encoding, to seal under the root of trust: `"KF" 0x15 0x01 ‖
    /// ML-DSA-65 PKCS#8 ‖ X-Wing private key ‖ count ‖ (generation ‖ master
    /// secret key ‖ master public key)*` (keyfence-abe native encodings).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new(ty::AUTHORITY);
        w.bytes(self.signing.to_bytes());
        w.bytes(self.kem.to_bytes());
        w.count(self.masters.len());
        for m in &self.masters {
            w.u32(m.generation);
            w.bytes(&m.secret.to_bytes());
            w.bytes(&m.public.to_bytes());
        }
        w.finish_secret()
    }

    /// Decodes [`Authority::to_bytes`] output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FenceError> {
        const WHAT: &str = "authority";
        let mut r = Reader::new(WHAT, ty::AUTHORITY, bytes)?;
        let signing = sign::load(r.bytes()?, WHAT)?;
        let kem = XWingPrivateKey::from_bytes(r.bytes()?).map_err(|_| r.bad("bad KEM key"))?;
        let n = r.count()?;
        let mut masters: Vec<MasterGeneration> = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let generation = r.u32()?;
            if masters.last().is_some_and(|m| m.generation >= generation) {
                return Err(r.bad("generations not strictly increasing"));
            }
            let secret =
                MasterSecretKey::from_bytes(r.bytes()?).map_err(|_| r.bad("bad master secret"))?;
            let public =
                MasterPublicKey::from_bytes(r.bytes()?).map_err(|_| r.bad("bad master public"))?;
            masters.push(MasterGeneration {
                generation,
                public,
                secret,
            });
        }
        r.finish()?;
        if masters.is_empty() {
            return Err(FenceError::Malformed {
                what: WHAT,
                reason: "no master generation",
            });
        }
        let public = AuthorityPublic::new(signing.public_key_der()?);
        Ok(Self {
            signing,
            public,
            kem,
            masters,
        })
    }
}
