//! The DynamoDB `Bans`: a ban is an item of its principal's own partition (`PRINCIPAL#{p}` /
//! `BAN`), with the TTL of the ban's end; a read compares `expiresAt` with the clock, since TTL
//! deletes days late. A `$connect` with a principal reads it once (0.5 read units).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use domain::sessions::{Ban, Bans};
use domain::{Principal, RepositoryError, Timestamp};

use super::codec::{self, EXPIRES_AT, REASON, TTL, number_value, string_value};
use super::errors::repository_error;

pub struct DynamoBans {
    client: Client,
    table: String,
}

impl DynamoBans {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl Bans for DynamoBans {
    async fn ban(&self, principal: &Principal, ban: &Ban) -> Result<(), RepositoryError> {
        let mut item = codec::ban_key(principal);
        item.insert(EXPIRES_AT.into(), number_value(ban.until.as_millis()));
        item.insert(TTL.into(), number_value(ban.until.as_secs_ceil()));
        if let Some(reason) = &ban.reason {
            item.insert(REASON.into(), string_value(reason.clone()));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(repository_error)?;
        Ok(())
    }

    async fn unban(&self, principal: &Principal) -> Result<(), RepositoryError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(codec::ban_key(principal)))
            .send()
            .await
            .map_err(repository_error)?;
        Ok(())
    }

    async fn ban_of(
        &self,
        principal: &Principal,
        now: Timestamp,
    ) -> Result<Option<Ban>, RepositoryError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(codec::ban_key(principal)))
            .consistent_read(true)
            .send()
            .await
            .map_err(repository_error)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let until = codec::expires_at(&item)?;
        Ok((until > now).then(|| Ban {
            until,
            reason: codec::reason_of(&item),
        }))
    }

    async fn forget(&self, principal: &Principal) -> Result<(), RepositoryError> {
        for key in [
            codec::ban_key(principal),
            codec::principal_rate_key(principal),
        ] {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key))
                .send()
                .await
                .map_err(repository_error)?;
        }
        Ok(())
    }
}
