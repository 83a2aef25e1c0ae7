//! The node's authorization state: who each credential acts as, every key
//! policy (parsed once) and every grant, in memory beside the KMS replica.
//!
//! Writes go to the store first, then to memory, so a policy or grant holds
//! on this node as soon as the call that made it returns (a grant token works
//! at once here). Other nodes' changes arrive through the store's change
//! feed with the keys ([`Authz`] is the replica's [`AuthzFollower`]): a
//! key's policy and grants are held before the replica makes the key
//! visible, so deciding never reads the store.
//!
//! Every key's policy and grants are stamped with the store's authorization
//! version they were read at; an older state never replaces a newer one.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, RwLock};
use std::time::Duration;

use keyfence_core::authz::{AuthzStore, Grant, Policy, PolicyKind, Principal, StoredKeyPolicy};
use keyfence_core::store::{AuthzFollower, KeyAuthz};
use keyfence_core::{KeyId, StoreError};

use crate::config::PrincipalConfig;

/// A key's policy: as given (GetKeyPolicy returns it unchanged) and parsed.
#[derive(Debug)]
pub struct KeyPolicyEntry {
    /// The key's account.
    pub account: String,
    /// The document as stored.
    pub text: String,
    /// The parsed document.
    pub policy: Policy,
}

/// Who is calling and what its identity policy allows.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The IAM user or role.
    pub principal: Principal,
    /// Its identity policy.
    pub identity: Arc<Policy>,
    /// The client's address (aws:SourceIp), once the request is authorized.
    pub source_ip: Option<std::net::IpAddr>,
}

#[derive(Default)]
struct State {
    /// The version of the last whole load: every key's state is at least this new.
    floor: i64,
    /// Keys whose state is newer than `floor`: the version it was read at.
    stamps: HashMap<KeyId, i64>,
    policies: HashMap<KeyId, Arc<KeyPolicyEntry>>,
    grants: HashMap<KeyId, Arc<[Grant]>>,
}

impl State {
    /// Holds `current` for `key` unless what is held is as new.
    fn apply(&mut self, key: &KeyId, current: Option<KeyAuthz>) {
        let Some(current) = current else {
            self.stamps.remove(key);
            self.policies.remove(key);
            self.grants.remove(key);
            return;
        };
        let held = self.stamps.get(key).copied().unwrap_or(self.floor);
        if current.version <= held {
            return;
        }
        self.stamps.insert(*key, current.version);
        match current.policy {
            Some(p) => {
                self.policies.insert(*key, entry(p));
            }
            None => {
                self.policies.remove(key);
            }
        }
        if current.grants.is_empty() {
            self.grants.remove(key);
        } else {
            self.grants.insert(*key, current.grants.into());
        }
    }
}

/// Key policies, grants and principals of one node.
pub struct Authz {
    store: Arc<dyn AuthzStore>,
    state: RwLock<State>,
    /// Reads for grant tokens under way ([`Authz::fetch_within`]).
    fetching: Arc<AtomicUsize>,
    principals: BTreeMap<String, PrincipalConfig>,
    default_identities: RwLock<HashMap<String, Arc<Policy>>>,
}

impl std::fmt::Debug for Authz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authz").finish_non_exhaustive()
    }
}

/// Most reads for grant tokens under way at once ([`Authz::fetch_within`]).
const FETCHES: usize = 4;

/// A stored policy that no longer parses (a newer build's, or damaged)
/// denies everything rather than falling back to the default policy.
const DENY_ALL: &str = r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"*"}}"#;

fn entry(p: StoredKeyPolicy) -> Arc<KeyPolicyEntry> {
    let policy = Policy::parse(&p.text, PolicyKind::Key).unwrap_or_else(|e| {
        tracing::error!(key_id = %p.key_id, error = %e, "stored key policy does not parse; the key denies every request");
        Policy::parse(DENY_ALL, PolicyKind::Key).expect("the deny-all policy parses")
    });
    Arc::new(KeyPolicyEntry {
        account: p.account,
        text: p.text,
        policy,
    })
}

impl Authz {
    /// Loads every policy and grant of `store`; `principals` names who the
    /// config's credentials act as (others act as the IAM user their
    /// credential names, with the default identity policy). Once the node's
    /// KMS is open, [`keyfence_core::Kms::follow_authz`] keeps it in step.
    pub fn open(
        store: Arc<dyn AuthzStore>,
        principals: BTreeMap<String, PrincipalConfig>,
    ) -> Result<Self, StoreError> {
        let authz = Self {
            store,
            state: RwLock::new(State::default()),
            fetching: Arc::new(AtomicUsize::new(0)),
            principals,
            default_identities: RwLock::new(HashMap::new()),
        };
        authz.reload()?;
        Ok(authz)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads everything from the store again. A key whose state here is
    /// newer than the load (a change this node made meanwhile) keeps it.
    pub fn reload(&self) -> Result<(), StoreError> {
        let snapshot = self.store.load_authz()?;
        let mut grants: HashMap<KeyId, Vec<Grant>> = HashMap::new();
        for g in snapshot.grants {
            grants.entry(g.key_id).or_default().push(g);
        }
        let mut fresh = State {
            floor: snapshot.version,
            stamps: HashMap::new(),
            policies: snapshot
                .policies
                .into_iter()
                .map(|p| (p.key_id, entry(p)))
                .collect(),
            grants: grants.into_iter().map(|(k, v)| (k, v.into())).collect(),
        };
        let mut state = self.write();
        for (key, stamp) in &state.stamps {
            if *stamp > fresh.floor {
                fresh.stamps.insert(*key, *stamp);
                match state.policies.get(key) {
                    Some(p) => fresh.policies.insert(*key, Arc::clone(p)),
                    None => fresh.policies.remove(key),
                };
                match state.grants.get(key) {
                    Some(g) => fresh.grants.insert(*key, Arc::clone(g)),
                    None => fresh.grants.remove(key),
                };
            }
        }
        *state = fresh;
        Ok(())
    }

    /// Reads `key`'s policy and grants from the store (a grant token names
    /// a grant this node has not received yet), waiting at most `wait`: the
    /// read runs on its own thread, so a store that does not answer delays
    /// the request by `wait` at most, and the grant then arrives through the
    /// change feed. At most [`FETCHES`] such reads run at once; beyond that
    /// the request goes on with what is known.
    pub fn fetch_within(&self, key: &KeyId, wait: Duration) {
        if self.fetching.fetch_add(1, Ordering::AcqRel) >= FETCHES {
            self.fetching.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let (tx, rx) = mpsc::channel();
        let (store, fetching, key) = (Arc::clone(&self.store), Arc::clone(&self.fetching), *key);
        let spawned = std::thread::Builder::new()
            .name("keyfence-grant-fetch".into())
            .spawn(move || {
                let _ = tx.send(store.key_authz(&key));
                fetching.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            self.fetching.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        match rx.recv_timeout(wait) {
            Ok(Ok(current)) => self.write().apply(&key, current),
            Ok(Err(e)) => tracing::warn!(error = %e, "reading grants for a grant token failed"),
            Err(_) => {
                tracing::warn!("reading grants for a grant token took too long; going on without")
            }
        }
    }

    /// Whether every grant `ids` names is known here.
    pub fn knows_grants<'a>(&self, mut ids: impl Iterator<Item = &'a str>) -> bool {
        let state = self.read();
        ids.all(|id| {
            state
                .grants
                .values()
                .any(|list| list.iter().any(|g| g.id == id))
        })
    }

    /// The caller a verified credential stands for.
    pub fn caller(&self, access_key_id: &str, account: &str, user_name: &str) -> Caller {
        if let Some(c) = self.principals.get(access_key_id) {
            return Caller {
                principal: c.principal.clone(),
                identity: c
                    .identity_policy
                    .clone()
                    .unwrap_or_else(|| self.default_identity(c.principal.account())),
                source_ip: None,
            };
        }
        Caller {
            principal: Principal::user(account, user_name),
            identity: self.default_identity(account),
            source_ip: None,
        }
    }

    fn default_identity(&self, account: &str) -> Arc<Policy> {
        if let Some(p) = self
            .default_identities
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(account)
        {
            return Arc::clone(p);
        }
        let p = Arc::new(Policy::default_identity(account));
        self.default_identities
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(account.to_string(), Arc::clone(&p));
        p
    }

    /// The key's policy; `None`: it has the default key policy.
    pub fn key_policy(&self, key: &KeyId) -> Option<Arc<KeyPolicyEntry>> {
        self.read().policies.get(key).cloned()
    }

    /// The key's grants.
    pub fn grants(&self, key: &KeyId) -> Arc<[Grant]> {
        self.read()
            .grants
            .get(key)
            .cloned()
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }

    /// The grant with id `grant_id`, on any key.
    pub fn find_grant(&self, grant_id: &str) -> Option<Grant> {
        self.read()
            .grants
            .values()
            .flat_map(|g| g.iter())
            .find(|g| g.id == grant_id)
            .cloned()
    }

    /// Every grant that `matches`, on any key.
    pub fn grants_where(&self, matches: impl Fn(&Grant) -> bool) -> Vec<Grant> {
        self.read()
            .grants
            .values()
            .flat_map(|g| g.iter())
            .filter(|g| matches(g))
            .cloned()
            .collect()
    }

    /// The account owning `key`, if this node knows the key from a policy or
    /// grant (how a ciphertext of another account's key finds its owner).
    pub fn owner_of(&self, key: &KeyId) -> Option<String> {
        let state = self.read();
        state
            .policies
            .get(key)
            .map(|p| p.account.clone())
            .or_else(|| {
                state
                    .grants
                    .get(key)?
                    .first()
                    .map(|g| g.key_account.clone())
            })
    }

    /// Stores a key's policy, then holds it here.
    pub fn set_key_policy(
        &self,
        key: KeyId,
        account: &str,
        text: String,
    ) -> Result<(), StoreError> {
        let state = self.store.put_key_policy(&StoredKeyPolicy {
            key_id: key,
            account: account.to_string(),
            text,
        })?;
        self.write().apply(&key, Some(state));
        Ok(())
    }

    /// Stores a grant, then holds it here.
    pub fn add_grant(&self, grant: Grant) -> Result<(), StoreError> {
        let key = grant.key_id;
        let state = self.store.insert_grant(&grant)?;
        self.write().apply(&key, Some(state));
        Ok(())
    }

    /// Removes a grant from the store and here; returns whether the store had it.
    pub fn remove_grant(&self, key: &KeyId, grant_id: &str) -> Result<bool, StoreError> {
        let (existed, state) = self.store.delete_grant(key, grant_id)?;
        self.write().apply(key, state);
        Ok(existed)
    }
}

impl AuthzFollower for Authz {
    fn apply(&self, key: &KeyId, current: Option<KeyAuthz>) {
        self.write().apply(key, current);
    }

    fn reload(&self) -> Result<(), StoreError> {
        Authz::reload(self)
    }

    fn fetch(&self, key: &KeyId) -> Result<(), StoreError> {
        let current = self.store.key_authz(key)?;
        self.write().apply(key, current);
        Ok(())
    }
}
