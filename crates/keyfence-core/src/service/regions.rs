//! The regions a node serves, and the region of the request being served.
//!
//! One [`Kms`] serves every region of its node. The request's region (the
//! SigV4 credential scope, checked by the server) is set for the duration of
//! the request with [`Kms::in_region`]; every key lookup, listing and ARN of
//! the core then reads it through [`Kms::region`]. A request is served
//! synchronously on one thread, so the region is kept per thread, for this
//! `Kms` only; outside a request it is the node's default region (the first).

use std::cell::Cell;

use super::Kms;
use crate::ids::Region;
use crate::KmsError;

thread_local! {
    /// The `Kms` (by address) and the index of the region the current
    /// thread's request is scoped to.
    static SCOPE: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

/// Puts back the scope that was in force before [`Kms::in_region`].
struct Restore(Option<(usize, usize)>);

impl Drop for Restore {
    fn drop(&mut self) {
        SCOPE.set(self.0);
    }
}

/// Parses a configured region name.
pub(super) fn parse_region(name: &str) -> Result<Region, KmsError> {
    Region::new(name).ok_or_else(|| KmsError::Internal(format!("{name:?} is not a region name")))
}

impl Kms {
    /// Also serves `regions` (besides the default region given at open;
    /// duplicates are ignored). Keys of regions a node does not serve stay
    /// in the store, untouched, for the nodes that do.
    pub fn with_regions<S: AsRef<str>>(mut self, regions: &[S]) -> Result<Self, KmsError> {
        for name in regions {
            let region = parse_region(name.as_ref())?;
            if !self.regions.contains(&region) {
                self.regions.push(region);
            }
        }
        Ok(self)
    }

    /// Whether this node serves `region`.
    pub fn serves(&self, region: &str) -> bool {
        self.regions.iter().any(|r| r.as_str() == region)
    }

    /// The regions this node serves, the default first.
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        self.regions.iter().map(Region::as_str)
    }

    /// Runs `f` (one request) scoped to `region`: keys, aliases and
    /// listings are those of `region`, and new keys are created there.
    /// [`KmsError::RegionNotServed`] if this node does not serve it.
    pub fn in_region<T>(&self, region: &str, f: impl FnOnce() -> T) -> Result<T, KmsError> {
        let index = self
            .regions
            .iter()
            .position(|r| r.as_str() == region)
            .ok_or_else(|| KmsError::RegionNotServed {
                region: region.to_string(),
            })?;
        let _restore = Restore(SCOPE.replace(Some((self.address(), index))));
        Ok(f())
    }

    /// The region of the request being served (the default region outside a request).
    pub fn region(&self) -> &str {
        self.regions[self.region_index()].as_str()
    }

    /// [`Self::region`] as a [`Region`].
    pub(super) fn current_region(&self) -> Region {
        self.regions[self.region_index()]
    }

    fn region_index(&self) -> usize {
        match SCOPE.get() {
            Some((kms, index)) if kms == self.address() && index < self.regions.len() => index,
            _ => 0,
        }
    }

    fn address(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }
}
