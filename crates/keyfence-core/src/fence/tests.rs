//! Attacks that need the module's insides: a broken pairing (the master secret
//! in hand), a leaked `s_policy`, attribute keys spliced together, and fields
//! tampered with under a valid signature (as a rogue authority could).

use keyfence_abe::{AttributeKey, Attributes, Ciphertext, Policy};
use keyfence_crypto::Secret;
use rand_core::RngCore;

use super::grant::{attribute_key_aad, ATTRIBUTE_KEY_PURPOSE};
use super::record::{s_policy_aad, SealPlace, S_POLICY_PURPOSE};
use super::rng::AwsLcRng;
use super::*;

const POLICY: &str = "region: EU and not country: RU";

struct Setup {
    authority: Authority,
    nodes: Vec<(Vec<u8>, NodeGrant)>,
    record: FenceRecord,
}

fn setup() -> Setup {
    let authority = Authority::new().unwrap();
    let mut nodes = Vec::new();
    for (name, attrs) in [
        ("fra", "country: DE, region: EU"),
        ("par", "country: FR, region: EU"),
        ("iad", "country: US, region: NA"),
        ("mow", "country: RU, region: EU"),
    ] {
        let identity = NodeIdentity::generate(name, Attributes::parse(attrs).unwrap()).unwrap();
        let approved = identity.public().attributes().clone();
        let grant = authority
            .approve(&identity.join_request().unwrap(), approved, &[])
            .unwrap()
            .grant;
        nodes.push((identity.to_bytes().to_vec(), grant));
    }
    let grants: Vec<NodeGrant> = nodes.iter().map(|(_, g)| g.clone()).collect();
    let record = authority.create_fence(POLICY, &grants).unwrap();
    Setup {
        authority,
        nodes,
        record,
    }
}

impl Setup {
    fn entry(&self, name: &str) -> &(Vec<u8>, NodeGrant) {
        self.nodes.iter().find(|(_, g)| g.name() == name).unwrap()
    }

    fn identity(&self, name: &str) -> NodeIdentity {
        NodeIdentity::from_bytes(&self.entry(name).0).unwrap()
    }

    fn keyring(&self, name: &str) -> NodeKeyring {
        NodeKeyring::open(
            self.identity(name),
            &self.entry(name).1,
            self.authority.public(),
        )
        .unwrap()
    }

    /// The node's generation-1 attribute key, out of its grant.
    fn attribute_key(&self, name: &str) -> AttributeKey {
        let grant = &self.entry(name).1;
        let bytes = envelope::open(
            self.identity(name).kem(),
            ATTRIBUTE_KEY_PURPOSE,
            &attribute_key_aad(name, 1),
            &grant.keys[0].envelope,
            "test",
        )
        .unwrap();
        AttributeKey::from_bytes(bytes.expose()).unwrap()
    }

    /// `s_policy` as `name` opens it: what leaks if that node is compromised.
    fn leak_s_policy(&self, name: &str) -> Secret {
        let r = &self.record;
        envelope::open(
            self.identity(name).kem(),
            S_POLICY_PURPOSE,
            &s_policy_aad(r.id, r.epoch, name),
            r.envelope_of(name).unwrap(),
            "test",
        )
        .unwrap()
    }

    /// A keyring holding `key` for generation 1 that no grant gave.
    fn attacker(&self, identity: NodeIdentity, key: AttributeKey) -> NodeKeyring {
        let attrs = key.attributes().unwrap();
        NodeKeyring::from_parts(
            identity,
            self.authority.public().clone(),
            attrs,
            vec![(1, key)],
        )
    }

    fn not_satisfied(&self) -> FenceError {
        FenceError::NotSatisfied {
            fence: self.record.id,
            policy: POLICY.to_owned(),
        }
    }
}

const ABE_UNAUTHENTIC: FenceError = FenceError::Unauthentic {
    what: "ABE ciphertext of k_abe",
};
const SEAL_UNAUTHENTIC: FenceError = FenceError::Unauthentic {
    what: "sealed private half of the policy key",
};

/// Someone who copied the store and broke the pairing (so holds the CP-ABE
/// master secret) recovers `k_abe`, and still opens nothing without `s_policy`.
#[test]
fn master_secret_without_s_policy_opens_nothing() {
    let s = setup();
    let r = &s.record;
    let msk = s.authority.active_master_secret();
    let mut rng = AwsLcRng::default();
    let forged = msk.keygen(
        &Attributes::parse("country: DE, region: EU").unwrap(),
        &mut rng,
    );
    let entry = &r.generations[0];
    let k_abe = Secret::new(
        forged
            .decrypt(&Ciphertext::from_bytes(&entry.abe_ciphertext).unwrap())
            .unwrap(),
    );
    assert_eq!(k_abe.len(), 32, "the break is real: k_abe is in hand");
    let place = SealPlace {
        fence: r.id,
        generation: 1,
        epoch: r.epoch,
        policy: &r.policy,
    };
    let mut random = [0u8; 32];
    rng.fill_bytes(&mut random);
    for guess in [
        Secret::new(vec![0; 32]),
        Secret::new(random.to_vec()),
        k_abe.clone(),
        Secret::new(r.envelope_of("fra").unwrap()[..32].to_vec()),
    ] {
        assert_eq!(
            place
                .open(&k_abe, &guess, &entry.sealed_private)
                .unwrap_err(),
            SEAL_UNAUTHENTIC
        );
    }
    // Control: the same call with the real s_policy (what fra holds) opens.
    assert!(place
        .open(&k_abe, &s.leak_s_policy("fra"), &entry.sealed_private)
        .is_ok());
    // With its own fresh KEM key it opens no node's envelope, and its keyring
    // (satisfying attribute key, no envelope) opens no policy key.
    let evil = NodeIdentity::generate("fra", Attributes::new()).unwrap();
    for e in &r.envelopes {
        let aad = s_policy_aad(r.id, r.epoch, &e.node);
        assert!(matches!(
            envelope::open(evil.kem(), S_POLICY_PURPOSE, &aad, &e.envelope, "x"),
            Err(FenceError::Unauthentic { .. })
        ));
    }
    let attacker = s.attacker(evil, forged);
    assert_eq!(
        attacker.open_policy_key(r).unwrap_err(),
        FenceError::Unauthentic {
            what: "s_policy envelope"
        }
    );
    let stranger = s.attacker(
        NodeIdentity::generate("ber", Attributes::new()).unwrap(),
        msk.keygen(
            &Attributes::parse("country: DE, region: EU").unwrap(),
            &mut rng,
        ),
    );
    assert_eq!(stranger.open_policy_key(r).unwrap_err(), s.not_satisfied());
    rng.check().unwrap();
}

/// A leaked `s_policy` is useless to a node whose attributes do not satisfy the policy.
#[test]
fn s_policy_with_an_unsatisfying_attribute_key_opens_nothing() {
    let s = setup();
    let r = &s.record;
    let leaked = s.leak_s_policy("fra");
    assert!(s.keyring("par").open_with_secret(r, &leaked).is_ok());
    for name in ["mow", "iad"] {
        assert_eq!(
            s.keyring(name).open_with_secret(r, &leaked).unwrap_err(),
            s.not_satisfied()
        );
    }
    // Skipping the CP-ABE step in the attacker's own code does not help: the
    // sealing key needs k_abe, which only a satisfying attribute key yields.
    let entry = &r.generations[0];
    let place = SealPlace {
        fence: r.id,
        generation: 1,
        epoch: r.epoch,
        policy: &r.policy,
    };
    let other = s.authority.create_fence("region: NA", &[]).unwrap();
    let mut rng = AwsLcRng::default();
    let mut random = [0u8; 32];
    rng.fill_bytes(&mut random);
    for guess in [
        Secret::new(vec![0; 32]),
        Secret::new(random.to_vec()),
        leaked.clone(),
        Secret::new(other.generations[0].abe_ciphertext[..32].to_vec()),
    ] {
        assert_eq!(
            place
                .open(&guess, &leaked, &entry.sealed_private)
                .unwrap_err(),
            SEAL_UNAUTHENTIC
        );
    }
    // Control: with k_abe as a satisfying key decrypts it, the same call opens.
    let k_abe = Secret::new(
        s.attribute_key("fra")
            .decrypt(&Ciphertext::from_bytes(&entry.abe_ciphertext).unwrap())
            .unwrap(),
    );
    assert!(place.open(&k_abe, &leaked, &entry.sealed_private).is_ok());
    rng.check().unwrap();
}

/// The parts of a native attribute key encoding: header, K1 and K2, then one
/// entry per label (label, kind, optional value, K3 and for the wild label its
/// extra points), as keyfence-abe writes them (native version 2: 16-bit
/// string lengths).
fn split_key(bytes: &[u8]) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let prefix_len = 4 + 3 * 96 + 4 * 48;
    let prefix = bytes[..prefix_len].to_vec();
    let n = u16::from_be_bytes([bytes[prefix_len], bytes[prefix_len + 1]]);
    let mut at = prefix_len + 2;
    let mut entries = Vec::new();
    for _ in 0..n {
        let start = at;
        let len = usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
        let label = String::from_utf8(bytes[at + 2..at + 2 + len].to_vec()).unwrap();
        at += 2 + len;
        let kind = bytes[at];
        at += 1;
        if kind == 0 {
            at += 2 + usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
        }
        at += 4 * 48;
        if kind == 2 {
            at += 4 * 48;
        }
        entries.push((label, bytes[start..at].to_vec()));
    }
    assert_eq!(at, bytes.len());
    (prefix, entries)
}

fn join_key(prefix: &[u8], entries: &[(String, Vec<u8>)]) -> AttributeKey {
    let mut out = prefix.to_vec();
    out.extend_from_slice(&(entries.len() as u16).to_be_bytes());
    for (_, e) in entries {
        out.extend_from_slice(e);
    }
    AttributeKey::from_bytes(&out).unwrap()
}

/// mow {country: RU, region: EU} and iad {country: US, region: NA}: neither
/// satisfies the policy, together their attributes would. Pooling what they
/// hold opens nothing: no envelope for either, and even given `s_policy`, an
/// attribute key spliced from both does not decrypt `k_abe`.
#[test]
fn colluding_nodes_cannot_pool_their_keys() {
    let s = setup();
    let r = &s.record;
    let policy = Policy::parse(POLICY).unwrap();
    for name in ["mow", "iad"] {
        assert_eq!(
            s.keyring(name).open_policy_key(r).unwrap_err(),
            s.not_satisfied()
        );
        let kem = s.identity(name);
        for e in &r.envelopes {
            let aad = s_policy_aad(r.id, r.epoch, &e.node);
            assert!(envelope::open(kem.kem(), S_POLICY_PURPOSE, &aad, &e.envelope, "x").is_err());
        }
    }
    let leaked = s.leak_s_policy("par");
    let (mow_prefix, mow_entries) = split_key(&s.attribute_key("mow").to_bytes());
    let (iad_prefix, iad_entries) = split_key(&s.attribute_key("iad").to_bytes());
    let take = |entries: &[(String, Vec<u8>)], label: &str| {
        entries.iter().find(|(l, _)| l == label).unwrap().clone()
    };
    // The splice machinery is faithful: reassembling a key unchanged gives it back.
    assert_eq!(join_key(&mow_prefix, &mow_entries), s.attribute_key("mow"));
    for (prefix, entries) in [(&mow_prefix, &mow_entries), (&iad_prefix, &iad_entries)] {
        let bk = entries
            .iter()
            .find(|(l, _)| l != "country" && l != "region")
            .unwrap()
            .clone();
        let mut pooled = vec![
            bk,
            take(&iad_entries, "country"),
            take(&mow_entries, "region"),
        ];
        pooled.sort_by(|a, b| a.0.cmp(&b.0));
        let pooled = join_key(prefix, &pooled);
        let attrs = pooled.attributes().unwrap();
        assert!(policy.satisfied_by(&attrs), "{attrs}");
        let ring = s.attacker(s.identity("mow"), pooled);
        assert_eq!(
            ring.open_with_secret(r, &leaked).unwrap_err(),
            ABE_UNAUTHENTIC
        );
    }
    // Control: an honestly issued key for the pooled attributes does open it.
    let mut rng = AwsLcRng::default();
    let honest = s.authority.active_master_secret().keygen(
        &Attributes::parse("country: US, region: EU").unwrap(),
        &mut rng,
    );
    let ring = s.attacker(s.identity("mow"), honest);
    assert!(ring.open_with_secret(r, &leaked).is_ok());
}

/// Each layer checks its own bytes: tampering under a valid signature (the
/// signature itself is checked first) gives the typed error of that layer.
#[test]
fn tampered_fields_give_the_error_of_their_layer() {
    let s = setup();
    let fra = s.keyring("fra");
    let resign = |f: &dyn Fn(&mut FenceRecord)| {
        let mut r = s.record.clone();
        f(&mut r);
        s.authority.sign_record(r).unwrap()
    };
    let sealed_len = s.record.generations[0].sealed_private.len();
    for i in [0, 11, 12, 100, sealed_len - 1] {
        let r = resign(&|r| r.generations[0].sealed_private[i] ^= 1);
        assert_eq!(
            fra.open_policy_key(&r).unwrap_err(),
            SEAL_UNAUTHENTIC,
            "{i}"
        );
    }
    let abe_len = s.record.generations[0].abe_ciphertext.len();
    for i in [0, 3, 20, 40, 500, abe_len / 2, abe_len - 40, abe_len - 1] {
        let r = resign(&|r| r.generations[0].abe_ciphertext[i] ^= 1);
        assert_eq!(fra.open_policy_key(&r).unwrap_err(), ABE_UNAUTHENTIC, "{i}");
    }
    let envelope_len = s.record.envelope_of("fra").unwrap().len();
    for i in [0, 1087, 1088, 1119, 1120, 1140, envelope_len - 1] {
        let r = resign(&|r| {
            let e = r.envelopes.iter_mut().find(|e| e.node == "fra").unwrap();
            e.envelope[i] ^= 1;
        });
        assert_eq!(
            fra.open_policy_key(&r).unwrap_err(),
            FenceError::Unauthentic {
                what: "s_policy envelope"
            },
            "{i}"
        );
    }
    // par's envelope filed under fra's name.
    let r = resign(&|r| {
        let par = r.envelope_of("par").unwrap().to_vec();
        r.envelopes
            .iter_mut()
            .find(|e| e.node == "fra")
            .unwrap()
            .envelope = par;
    });
    assert!(matches!(
        fra.open_policy_key(&r),
        Err(FenceError::Unauthentic { .. })
    ));
    // A swapped public half no longer matches the sealed private half.
    let other = s.authority.create_fence("region: EU", &[]).unwrap();
    let r = resign(&|r| r.public_key = other.public_key.clone());
    assert_eq!(
        fra.open_policy_key(&r).unwrap_err(),
        FenceError::Unauthentic {
            what: "policy private key"
        }
    );
    let r = resign(&|r| r.authority_envelope[1200] ^= 1);
    assert_eq!(
        s.authority.open_fence(&r).unwrap_err(),
        FenceError::Unauthentic {
            what: "authority envelope"
        }
    );
    // An epoch changed under the signature breaks every binding that carries it.
    let r = resign(&|r| r.epoch = 7);
    assert!(matches!(
        fra.open_policy_key(&r),
        Err(FenceError::Unauthentic { .. })
    ));

    // A grant whose attribute-key envelope was altered, re-signed.
    let mut grant = s.entry("fra").1.clone();
    grant.keys[0].envelope[1500] ^= 1;
    let grant = s.authority.sign_grant(grant).unwrap();
    assert_eq!(
        NodeKeyring::open(s.identity("fra"), &grant, s.authority.public()).unwrap_err(),
        FenceError::Unauthentic {
            what: "attribute key envelope"
        }
    );
}

#[test]
fn the_rng_adapter_draws_from_aws_lc() {
    let mut rng = AwsLcRng::default();
    let (a, b) = (rng.next_u64(), rng.next_u64());
    assert_ne!(a, b);
    let mut buf = [0u8; 64];
    rng.try_fill_bytes(&mut buf).unwrap();
    assert_ne!(buf, [0u8; 64]);
    rng.check().unwrap();
}
