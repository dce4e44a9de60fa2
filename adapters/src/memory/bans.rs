//! The in-memory `Bans`, behaving as the DynamoDB adapter does (the contract suite checks both).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use domain::sessions::{Ban, Bans};
use domain::{Principal, RepositoryError, Timestamp};

#[derive(Default)]
pub struct InMemoryBans {
    bans: Mutex<BTreeMap<Principal, Ban>>,
}

impl InMemoryBans {
    fn bans(&self) -> std::sync::MutexGuard<'_, BTreeMap<Principal, Ban>> {
        self.bans.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Principals with a ban kept (expired or not): what a test checks `forget` left.
    pub fn kept(&self) -> Vec<Principal> {
        self.bans().keys().cloned().collect()
    }
}

#[async_trait]
impl Bans for InMemoryBans {
    async fn ban(&self, principal: &Principal, ban: &Ban) -> Result<(), RepositoryError> {
        self.bans().insert(principal.clone(), ban.clone());
        Ok(())
    }

    async fn unban(&self, principal: &Principal) -> Result<(), RepositoryError> {
        self.bans().remove(principal);
        Ok(())
    }

    async fn ban_of(
        &self,
        principal: &Principal,
        now: Timestamp,
    ) -> Result<Option<Ban>, RepositoryError> {
        Ok(self
            .bans()
            .get(principal)
            .filter(|ban| ban.until > now)
            .cloned())
    }

    async fn forget(&self, principal: &Principal) -> Result<(), RepositoryError> {
        self.bans().remove(principal);
        Ok(())
    }
}
