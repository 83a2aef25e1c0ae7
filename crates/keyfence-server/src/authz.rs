//! The node's authorization state: who each credential acts as, every key
//! policy (parsed once) and every grant, in memory beside the KMS replica.
//!
//! Writes go to the store first, then to memory, so a policy or grant holds
//! on this node as soon as the call that made it returns (a grant token works
//! at once here). Nodes sharing a store notice other nodes' changes by
//! polling the store's authorization version ([`follow`]), and a grant token
//! naming a grant not yet known here makes the node reload at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use keyfence_core::authz::{AuthzStore, Grant, Policy, PolicyKind, Principal, StoredKeyPolicy};
use keyfence_core::{Clock, KeyId, StoreError, SystemClock, Timestamp};

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
    version: i64,
    policies: HashMap<KeyId, Arc<KeyPolicyEntry>>,
    grants: HashMap<KeyId, Arc<[Grant]>>,
}

/// Key policies, grants and principals of one node.
pub struct Authz {
    store: Arc<dyn AuthzStore>,
    /// Whether other nodes write to the store too.
    shared: bool,
    /// When this node last read the store's version (ms; before the read).
    checked_at: AtomicI64,
    state: RwLock<State>,
    principals: BTreeMap<String, PrincipalConfig>,
    default_identities: RwLock<HashMap<String, Arc<Policy>>>,
}

impl std::fmt::Debug for Authz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authz").finish_non_exhaustive()
    }
}

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
    /// credential names, with the default identity policy).
    pub fn open(
        store: Arc<dyn AuthzStore>,
        shared: bool,
        principals: BTreeMap<String, PrincipalConfig>,
    ) -> Result<Self, StoreError> {
        let authz = Self {
            store,
            shared,
            checked_at: AtomicI64::new(SystemClock.now().0),
            state: RwLock::new(State::default()),
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

    /// Reads everything from the store again.
    pub fn reload(&self) -> Result<(), StoreError> {
        let snapshot = self.store.load_authz()?;
        let mut grants: HashMap<KeyId, Vec<Grant>> = HashMap::new();
        for g in snapshot.grants {
            grants.entry(g.key_id).or_default().push(g);
        }
        let state = State {
            version: snapshot.version,
            policies: snapshot
                .policies
                .into_iter()
                .map(|p| (p.key_id, entry(p)))
                .collect(),
            grants: grants.into_iter().map(|(k, v)| (k, v.into())).collect(),
        };
        *self.write() = state;
        Ok(())
    }

    /// Reloads if the store's version moved; returns whether it did.
    pub fn refresh(&self) -> Result<bool, StoreError> {
        let now = SystemClock.now().0;
        let version = self.store.authz_version()?;
        self.checked_at.fetch_max(now, Ordering::Relaxed);
        if version == self.read().version {
            return Ok(false);
        }
        self.reload()?;
        Ok(true)
    }

    /// Before deciding for a key created at `created`: on a shared store, a
    /// key made after this node last read the store's version (within a margin
    /// for clock skew between nodes) may have a policy or grants this node has
    /// not read yet, so it reads the version now (and reloads if it moved).
    pub fn catch_up_for(&self, created: Timestamp) {
        /// Clock skew between nodes tolerated.
        const MARGIN_MS: i64 = 5_000;
        if self.shared && created.0 + MARGIN_MS >= self.checked_at.load(Ordering::Relaxed) {
            if let Err(e) = self.refresh() {
                tracing::warn!(error = %e, "reading key policies and grants failed");
            }
        }
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
        policy: Policy,
    ) -> Result<(), StoreError> {
        self.store.put_key_policy(&StoredKeyPolicy {
            key_id: key,
            account: account.to_string(),
            text: text.clone(),
        })?;
        let entry = Arc::new(KeyPolicyEntry {
            account: account.to_string(),
            text,
            policy,
        });
        self.write().policies.insert(key, entry);
        Ok(())
    }

    /// Stores a grant, then holds it here.
    pub fn add_grant(&self, grant: Grant) -> Result<(), StoreError> {
        self.store.insert_grant(&grant)?;
        let mut state = self.write();
        let mut list: Vec<Grant> = state
            .grants
            .get(&grant.key_id)
            .map(|g| g.to_vec())
            .unwrap_or_default();
        let key = grant.key_id;
        list.push(grant);
        state.grants.insert(key, list.into());
        Ok(())
    }

    /// Removes a grant from the store and here; returns whether the store had it.
    pub fn remove_grant(&self, key: &KeyId, grant_id: &str) -> Result<bool, StoreError> {
        let existed = self.store.delete_grant(key, grant_id)?;
        let mut state = self.write();
        if let Some(list) = state.grants.get(key) {
            let kept: Vec<Grant> = list.iter().filter(|g| g.id != grant_id).cloned().collect();
            state.grants.insert(*key, kept.into());
        }
        Ok(existed)
    }
}

/// Polls the store's authorization version every `every` and reloads when
/// it moved (nodes sharing a store).
pub async fn follow(authz: Arc<Authz>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let a = Arc::clone(&authz);
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || a.refresh()).await {
            tracing::warn!(error = %e, "reading key policies and grants failed");
        }
    }
}
