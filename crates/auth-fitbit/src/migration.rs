//! The move from legacy Fitbit to Google Health, one user at a time.
//!
//! Google's migration guide asks apps to run both OAuth flows side by side
//! during the bridge, behind one abstraction, with a per-user flag of which
//! applies. With this crate that is:
//!
//! 1. Register both providers with one [`TokenManager`]: a
//!    [`FitbitProvider`](crate::FitbitProvider) under `fitbit` and a
//!    [`GoogleHealthProvider`] under `google-health` (both are
//!    [`OAuth2Provider`]s).
//! 2. Keep each user under the **same account id** in both. The per-user
//!    flag is then simply which provider holds a usable token: the
//!    [`Bridge`] asks Google Health first and falls back to legacy Fitbit.
//! 3. [`plan`] lists the users still on legacy Fitbit and, for each, the
//!    Google authorize request (mapped scopes, `prompt=consent`, same
//!    account id) that moves them, and the Fitbit user id the identity
//!    check will expect. Send the user through it and finish with
//!    [`Bridge::link`], which checks, through the Google Health identity
//!    endpoint, that the Google account that consented is this Fitbit user
//!    (its `legacyUserId` equals the stored Fitbit `user_id`) before it
//!    stores the Google token; from then on the bridge uses it.
//! 4. Keep or revoke the legacy token, as you choose. Since 2026-11-02 the
//!    legacy endpoints answer 410, so revoking fails; remove it locally with
//!    [`TokenManager::remove`].

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, PoisonError, RwLock};

use auth_core::{
    AccessToken, AccountId, AuthorizeRequest, Callback, Error, PendingAuthorization, ProviderId,
    Result, TokenKey, TokenManager, TokenSet,
};

use auth_oauth2::OAuth2Provider;

use crate::GoogleHealthProvider;
use crate::google::scopes as g;
use crate::identity::HealthIdentity;
use crate::scope::Scope;

/// Whether to ask Google for read access only, or read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// `.readonly` scopes only.
    #[default]
    ReadOnly,
    /// `.readonly` plus `.writeonly` where Google has one.
    ReadWrite,
}

/// The Google Health scopes that replace one legacy Fitbit scope, per the
/// migration guide's table. Empty for scopes with no successor (`social`,
/// unknown scopes).
pub fn google_scopes_for(scope: &Scope, access: Access) -> Vec<&'static str> {
    let (read, write): (&'static str, Option<&'static str>) = match scope {
        Scope::Activity | Scope::CardioFitness => (
            g::ACTIVITY_AND_FITNESS_READONLY,
            Some(g::ACTIVITY_AND_FITNESS_WRITEONLY),
        ),
        Scope::Heartrate
        | Scope::OxygenSaturation
        | Scope::RespiratoryRate
        | Scope::Temperature
        | Scope::BloodGlucose
        | Scope::Weight => (
            g::HEALTH_METRICS_AND_MEASUREMENTS_READONLY,
            Some(g::HEALTH_METRICS_AND_MEASUREMENTS_WRITEONLY),
        ),
        Scope::Electrocardiogram => (g::ECG_READONLY, None),
        Scope::IrregularRhythmNotifications => (g::IRN_READONLY, None),
        Scope::Location => (g::LOCATION_READONLY, None),
        Scope::Nutrition => (g::NUTRITION_READONLY, Some(g::NUTRITION_WRITEONLY)),
        Scope::Profile => (g::PROFILE_READONLY, Some(g::PROFILE_WRITEONLY)),
        Scope::Settings => (g::SETTINGS_READONLY, Some(g::SETTINGS_WRITEONLY)),
        Scope::Sleep => (g::SLEEP_READONLY, Some(g::SLEEP_WRITEONLY)),
        Scope::Social | Scope::Other(_) => return Vec::new(),
    };
    match (access, write) {
        (Access::ReadWrite, Some(write)) => vec![read, write],
        _ => vec![read],
    }
}

/// Maps legacy scopes to Google Health scopes: the sorted, deduplicated
/// Google scopes, and the legacy scopes that have no successor.
pub fn map_scopes<'a>(
    legacy: impl IntoIterator<Item = &'a Scope>,
    access: Access,
) -> (Vec<String>, Vec<Scope>) {
    let mut mapped = BTreeSet::new();
    let mut unmapped = Vec::new();
    for scope in legacy {
        let google = google_scopes_for(scope, access);
        if google.is_empty() {
            unmapped.push(scope.clone());
        }
        mapped.extend(google.into_iter().map(str::to_owned));
    }
    (mapped.into_iter().collect(), unmapped)
}

/// One user's move to Google Health.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    /// The account, the same under both providers.
    pub account: AccountId,
    /// The legacy Fitbit scopes the user had granted.
    pub legacy_scopes: Vec<Scope>,
    /// The Google Health scopes to ask for.
    pub google_scopes: Vec<String>,
    /// Legacy scopes with no Google Health successor.
    pub unmapped: Vec<Scope>,
    /// The identity check [`Bridge::link`] will make: the `legacyUserId`
    /// the Google account must report, the Fitbit `user_id` stored with the
    /// legacy token (the account id when the token names none).
    pub expected_legacy_user_id: String,
    /// The authorize request to pass to
    /// [`TokenManager::begin_authorization`] for the Google provider.
    pub request: AuthorizeRequest,
}

/// Lists the accounts stored under `legacy` that have no token under
/// `google` yet, with the request that moves each one.
///
/// # Errors
///
/// The store's errors; [`Error::InvalidInput`] when either provider is not
/// registered with the manager.
pub async fn plan(
    manager: &TokenManager,
    legacy: &ProviderId,
    google: &ProviderId,
    access: Access,
) -> Result<Vec<Move>> {
    for id in [legacy, google] {
        if manager.provider(id).is_none() {
            return Err(Error::invalid_input(format!(
                "no provider {id} is registered with the manager"
            )));
        }
    }
    let moved: BTreeSet<AccountId> = manager
        .list(Some(google))
        .await?
        .into_iter()
        .map(|k| k.account)
        .collect();
    let mut moves = Vec::new();
    let mut legacy_keys = manager.list(Some(legacy)).await?;
    legacy_keys.sort();
    for key in legacy_keys {
        if moved.contains(&key.account) {
            continue;
        }
        let Some(token) = manager.stored(&key).await? else {
            continue;
        };
        let expected_legacy_user_id = expected_legacy_user_id(&key.account, &token);
        let legacy_scopes: Vec<Scope> = token.scopes().iter().map(|s| Scope::parse(s)).collect();
        let (google_scopes, unmapped) = map_scopes(&legacy_scopes, access);
        let request = AuthorizeRequest::new()
            .account(key.account.clone())
            .scopes(google_scopes.clone())
            .prompt("consent");
        moves.push(Move {
            account: key.account,
            legacy_scopes,
            google_scopes,
            unmapped,
            expected_legacy_user_id,
            request,
        });
    }
    Ok(moves)
}

/// The Fitbit user a legacy token belongs to: its `user_id`, else the
/// account id (Fitbit accounts are keyed by `user_id` by default).
fn expected_legacy_user_id(account: &AccountId, legacy: &TokenSet) -> String {
    crate::fitbit::user_id(legacy)
        .unwrap_or(account.as_str())
        .to_owned()
}

/// A Google Health grant that passed the identity check and was stored.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Linked {
    /// Where the Google token is stored: the Google provider and the same
    /// account as the legacy token.
    pub key: TokenKey,
    /// The new access token.
    pub token: AccessToken,
    /// Who the Google Health API says the user is.
    pub identity: HealthIdentity,
}

/// The dual-provider bridge: one call that gives a user's token from
/// whichever provider they are on, Google Health first.
///
/// Users only ever move from legacy Fitbit to Google Health, so once the
/// bridge has seen a user on Google Health it remembers that and goes
/// straight to the manager's in-memory cache; users not seen there yet cost
/// a store read to check whether they moved (perhaps in another process).
#[derive(Debug, Clone)]
pub struct Bridge {
    manager: TokenManager,
    legacy: ProviderId,
    google: ProviderId,
    moved: Arc<RwLock<HashSet<AccountId>>>,
    identity: Option<OAuth2Provider>,
}

impl Bridge {
    /// A bridge over `manager` between the two providers.
    pub fn new(manager: TokenManager, legacy: ProviderId, google: ProviderId) -> Self {
        Self {
            manager,
            legacy,
            google,
            moved: Arc::default(),
            identity: None,
        }
    }

    /// Uses `google`'s identity endpoint (see
    /// [`GoogleHealthProvider::identity`]) for the check in
    /// [`link`](Self::link). Pass the same provider that is registered with
    /// the manager under the bridge's Google id.
    #[must_use]
    pub fn with_identity_check(mut self, google: OAuth2Provider) -> Self {
        self.identity = Some(google);
        self
    }

    /// Finishes a move to Google Health started from [`plan`]: exchanges
    /// the callback's code, asks the Google Health identity endpoint who
    /// the new token belongs to, and stores it under the account only if
    /// its `legacyUserId` is the Fitbit `user_id` stored with the account's
    /// legacy token.
    ///
    /// When the check fails, nothing is stored under the Google provider
    /// for this account, the legacy Fitbit token is kept as it is, and the
    /// new grant is dropped unsaved. It is not revoked: revoking a Google
    /// grant ends every token that Google user gave this app, which may
    /// include that person's own, legitimate link here.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidInput`] when the Google account that consented is
    ///   another Fitbit user's (the user picked a different Google account),
    ///   or has no Fitbit history at all (then this is not a migration);
    ///   also when the authorization names no account, the account has no
    ///   legacy token, or the callback does not match.
    /// - [`Error::Configuration`] without
    ///   [`with_identity_check`](Self::with_identity_check).
    /// - [`Error::AuthorizationDenied`], and the provider's and the identity
    ///   endpoint's errors.
    pub async fn link(
        &self,
        pending: &PendingAuthorization,
        callback: &Callback,
    ) -> Result<Linked> {
        let Some(identity_source) = &self.identity else {
            return Err(Error::configuration(
                "Bridge::link checks the Google account's identity; give the bridge the Google \
                 Health provider with with_identity_check",
            ));
        };
        if pending.provider != self.google {
            return Err(Error::invalid_input(format!(
                "this authorization is for provider {}, not {}",
                pending.provider, self.google
            )));
        }
        callback.code_or_error()?;
        pending.verify_state(callback)?;
        let Some(account) = pending.account.clone() else {
            return Err(Error::invalid_input(
                "a move to Google Health must name the account (use the request from migration::plan)",
            ));
        };
        let legacy_key = TokenKey::new(self.legacy.clone(), account.clone());
        let Some(legacy) = self.manager.stored(&legacy_key).await? else {
            return Err(Error::invalid_input(format!(
                "account {account} has no {} token, so there is nothing to move; \
                 use TokenManager::complete_authorization for a new Google Health user",
                self.legacy
            )));
        };
        let expected = expected_legacy_user_id(&account, &legacy);
        let Some(provider) = self.manager.provider(&self.google) else {
            return Err(Error::invalid_input(format!(
                "no provider {} is registered with the manager",
                self.google
            )));
        };
        let grant = provider.exchange_code(pending, callback).await?;
        let identity = GoogleHealthProvider::identity(identity_source, &grant).await?;
        let refused = |why: String| {
            Err(Error::invalid_input(format!(
                "account {account}: {why}. Nothing was stored under {}; the new Google grant was \
                 dropped unsaved, and the {} token is kept. Ask the user to consent again, signed \
                 in to the Google account that their Fitbit account moved to",
                self.google, self.legacy
            )))
        };
        match identity.legacy_user_id.as_deref() {
            None => {
                return refused(format!(
                    "the Google account that consented has no Fitbit history (no legacyUserId), \
                     so this is not a migration of Fitbit user {expected}"
                ));
            }
            Some(found) if found != expected => {
                return refused(format!(
                    "the user consented with a different Google account: it belongs to another \
                     Fitbit user, not Fitbit user {expected}"
                ));
            }
            Some(_) => {}
        }
        let key = TokenKey::new(self.google.clone(), account.clone());
        let token = self.manager.save_authorization(&key, grant).await?;
        self.moved
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(account);
        Ok(Linked {
            key,
            token,
            identity,
        })
    }

    fn known_moved(&self, account: &AccountId) -> bool {
        self.moved
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(account)
    }

    /// Which provider `account` is on: Google Health if a token is stored
    /// there, else legacy Fitbit if one is stored there.
    ///
    /// # Errors
    ///
    /// The store's errors.
    pub async fn provider_for(&self, account: &AccountId) -> Result<Option<ProviderId>> {
        if self.known_moved(account) {
            return Ok(Some(self.google.clone()));
        }
        for id in [&self.google, &self.legacy] {
            let key = TokenKey::new(id.clone(), account.clone());
            if self.manager.stored(&key).await?.is_some() {
                if id == &self.google {
                    self.moved
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(account.clone());
                }
                return Ok(Some(id.clone()));
            }
        }
        Ok(None)
    }

    /// A valid access token for `account` from the provider it is on, and
    /// that provider's id.
    ///
    /// # Errors
    ///
    /// [`Error::ReauthorizationRequired`] when the account is on neither
    /// provider; otherwise the manager's errors. On legacy Fitbit after
    /// 2026-11-02 that is [`Error::ProviderRetired`]: move the user with
    /// [`plan`].
    pub async fn access_token(&self, account: &AccountId) -> Result<(ProviderId, AccessToken)> {
        let Some(provider) = self.provider_for(account).await? else {
            return Err(Error::reauthorization_required(
                None,
                format!(
                    "account {account} has no token with {} or {}",
                    self.google, self.legacy
                ),
            ));
        };
        let key = TokenKey::new(provider.clone(), account.clone());
        let token = self.manager.access_token(&key).await?;
        Ok((provider, token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_legacy_scope_is_covered_by_the_mapping_or_named_unmapped() {
        for scope in Scope::ALL {
            let google = google_scopes_for(&scope, Access::ReadOnly);
            if scope == Scope::Social {
                assert!(google.is_empty());
            } else {
                assert_eq!(google.len(), 1, "{scope}");
                assert!(google[0].starts_with(g::PREFIX), "{scope}");
                assert!(google[0].ends_with(".readonly"), "{scope}");
            }
        }
    }

    #[test]
    fn guide_table_examples() {
        assert_eq!(
            google_scopes_for(&Scope::CardioFitness, Access::ReadOnly),
            [g::ACTIVITY_AND_FITNESS_READONLY]
        );
        assert_eq!(
            google_scopes_for(&Scope::Weight, Access::ReadOnly),
            [g::HEALTH_METRICS_AND_MEASUREMENTS_READONLY]
        );
        assert_eq!(
            google_scopes_for(&Scope::Electrocardiogram, Access::ReadWrite),
            [g::ECG_READONLY]
        );
        assert_eq!(
            google_scopes_for(&Scope::IrregularRhythmNotifications, Access::ReadOnly),
            [g::IRN_READONLY]
        );
        assert_eq!(
            google_scopes_for(&Scope::Sleep, Access::ReadWrite),
            [g::SLEEP_READONLY, g::SLEEP_WRITEONLY]
        );
    }

    #[test]
    fn map_scopes_deduplicates_and_reports_unmapped() {
        let legacy = [
            Scope::Activity,
            Scope::CardioFitness,
            Scope::Heartrate,
            Scope::Social,
            Scope::Other("x".into()),
        ];
        let (google, unmapped) = map_scopes(&legacy, Access::ReadOnly);
        assert_eq!(
            google,
            vec![
                g::ACTIVITY_AND_FITNESS_READONLY.to_owned(),
                g::HEALTH_METRICS_AND_MEASUREMENTS_READONLY.to_owned()
            ]
        );
        assert_eq!(unmapped, vec![Scope::Social, Scope::Other("x".into())]);
    }
}
