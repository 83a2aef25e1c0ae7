//! aws-lc's DRBG behind the `rand_core` traits keyfence-abe takes.
//!
//! `RngCore::fill_bytes` cannot report failure. Rather than panic, a failed draw
//! fills zeros and marks the generator failed; every caller checks
//! [`AwsLcRng::check`] right after the keyfence-abe call and discards its result
//! on failure, so zero "randomness" never leaves this module's callers.

use keyfence_crypto::{rand, CryptoError};
use rand_core::{CryptoRng, RngCore};

/// The system DRBG (aws-lc) as a `rand_core` generator.
#[derive(Default)]
pub(crate) struct AwsLcRng {
    failed: bool,
}

impl AwsLcRng {
    /// `Err` if any draw since creation failed: the output that used it must be dropped.
    pub(crate) fn check(&self) -> Result<(), CryptoError> {
        if self.failed {
            Err(CryptoError::Rng)
        } else {
            Ok(())
        }
    }
}

impl RngCore for AwsLcRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if rand::fill(dest).is_err() {
            dest.fill(0);
            self.failed = true;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        rand::fill(dest).map_err(|_| {
            self.failed = true;
            rand_core::Error::from(
                std::num::NonZeroU32::new(rand_core::Error::CUSTOM_START)
                    .unwrap_or(std::num::NonZeroU32::MIN),
            )
        })
    }
}

/// aws-lc's DRBG is a cryptographically secure generator.
impl CryptoRng for AwsLcRng {}
