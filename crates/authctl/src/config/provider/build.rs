//! Building the provider a checked section describes. Reads a secret from
//! the environment only here, so a missing variable for one provider never
//! breaks commands on another.

use std::sync::Arc;

use auth_catalogue::ProviderSpec;
use auth_core::{ProviderId, TokenProvider};
use auth_fitbit::{FitbitProvider, Scope};
use auth_oauth2::{
    ClientCredentials, Endpoints, HttpConfig, OAuth2Provider, OAuth2ProviderBuilder,
};
use secrecy::SecretString;
use url::Url;

use super::section::Section;
use super::shapes::Grant;
use super::{ProviderConfig, ProviderKind, SecretSource};
use crate::exit::{CliResult, Failure, Target};

impl ProviderConfig {
    fn section(&self) -> Section<'_> {
        Section {
            file: &self.file,
            name: &self.name,
        }
    }

    /// Reads the client secret, from the environment if so configured.
    fn client_secret(&self) -> CliResult<Option<SecretString>> {
        match &self.secret {
            SecretSource::None => Ok(None),
            SecretSource::Inline(secret) => Ok(Some(secret.clone())),
            SecretSource::Env(var) => match std::env::var(var) {
                Ok(value) if !value.is_empty() => Ok(Some(SecretString::from(value))),
                _ => Err(Failure::usage(
                    format!(
                        "{}: [providers.{}] client_secret_env: the environment variable {var} is \
                         not set (or is empty)",
                        self.file, self.name
                    ),
                    format!("export {var}=<the client secret> and run the command again"),
                )),
            },
        }
    }

    /// Fails as [`build`](Self::build) would on a client secret missing from
    /// the environment, without building anything.
    pub(crate) fn check_secret(&self) -> CliResult<()> {
        let secret = self.client_secret()?;
        if self.kind == ProviderKind::GoogleHealth && secret.is_none() {
            return Err(self.google_secret_missing());
        }
        Ok(())
    }

    /// The error for a Google section without a client secret.
    fn google_secret_missing(&self) -> Failure {
        self.section()
            .error("client_secret_env", "missing: the Google client secret")
    }

    /// A library error while building, classified, with the file and the
    /// section.
    fn library_error(&self, err: &auth_core::Error) -> Failure {
        let target = Target {
            provider: &self.name,
            account: None,
        };
        Failure::from_auth(err, &target)
            .context(format!("{}: [providers.{}]", self.file, self.name))
    }

    /// Builds the provider. For `oauth2` with an issuer this fetches the
    /// server's metadata.
    pub(crate) async fn build(&self) -> CliResult<Arc<dyn TokenProvider>> {
        let secret = self.client_secret()?;
        let library = |e: auth_core::Error| self.library_error(&e);
        let provider: Arc<dyn TokenProvider> = match self.kind {
            ProviderKind::Fitbit => Arc::new(self.fitbit(secret).map_err(library)?),
            ProviderKind::GoogleHealth => {
                let secret = secret.ok_or_else(|| self.google_secret_missing())?;
                Arc::new(self.google_health(secret).map_err(library)?)
            }
            ProviderKind::OAuth2 => Arc::new(self.oauth2(secret.as_ref()).await?),
            ProviderKind::Catalogue => Arc::new(self.catalogue(secret).map_err(library)?),
        };
        Ok(provider)
    }

    /// `spec` with the section's endpoint URLs and issuer in place of the
    /// entry's.
    fn with_overrides(&self, mut spec: ProviderSpec) -> ProviderSpec {
        let urls = &self.urls;
        let e = &mut spec.endpoints;
        if let Some(url) = &urls.authorize {
            e.authorize = url.to_string();
        }
        if let Some(url) = &urls.token {
            e.token = url.to_string();
        }
        if let Some(url) = &urls.revoke {
            e.revoke = Some(url.to_string());
        }
        // Google's tokeninfo is its introspection.
        if let Some(url) = urls.introspect.as_ref().or(urls.tokeninfo.as_ref()) {
            e.introspect = Some(url.to_string());
        }
        if let Some(url) = &urls.device {
            e.device_authorization = Some(url.to_string());
        }
        if let Some(issuer) = &self.issuer {
            e.issuer = Some(issuer.clone());
        }
        spec
    }

    /// The section's redirect URI, API base URLs, scopes, secret and
    /// `expires_in` on `builder`.
    fn configure(
        &self,
        mut builder: OAuth2ProviderBuilder,
        secret: Option<SecretString>,
    ) -> OAuth2ProviderBuilder {
        builder = builder
            .redirect_uri(self.redirect_uri.as_str())
            .api_base_urls(self.api_base_urls.clone());
        if !self.scopes.is_empty() {
            builder = builder.default_scopes(self.scopes.clone());
        }
        if let Some(secret) = secret {
            builder = builder.client_secret(secret);
        }
        if let Some(seconds) = self.expires_in {
            builder = builder.expires_in(seconds);
        }
        builder
    }

    /// The built-in entry `name`.
    fn builtin(name: &str) -> auth_core::Result<ProviderSpec> {
        auth_catalogue::lookup(name).cloned().ok_or_else(|| {
            auth_core::Error::configuration(format!("the provider catalogue has no entry {name:?}"))
        })
    }

    /// Builds a `kind = "fitbit"` provider: the `fitbit` entry with the
    /// section's URLs, the app type's client authentication and Fitbit's
    /// hooks; scope names as [`Scope::parse`] writes them.
    fn fitbit(&self, secret: Option<SecretString>) -> auth_core::Result<OAuth2Provider> {
        let spec = self.with_overrides(Self::builtin("fitbit")?);
        let builder = FitbitProvider::from_entry(&self.name, &spec, &self.client_id)?
            .client_auth(self.app_type.client_auth());
        let mut builder = self.configure(builder, secret);
        if !self.scopes.is_empty() {
            builder = builder.default_scopes(self.scopes.iter().map(|s| Scope::parse(s)));
        }
        builder.build()
    }

    /// Builds a `kind = "google-health"` provider: the `google-health`
    /// entry with the section's URLs. Google's issuer is the origin of its
    /// authorize endpoint; the same holds for the emulator.
    fn google_health(&self, secret: SecretString) -> auth_core::Result<OAuth2Provider> {
        let mut spec = self.with_overrides(Self::builtin("google-health")?);
        match (&self.issuer, &self.urls.authorize) {
            (Some(issuer), _) => {
                spec.endpoints.issuer = Some(issuer.trim_end_matches('/').to_owned());
            }
            (None, Some(authorize)) => {
                spec.endpoints.issuer = Some(authorize.origin().ascii_serialization());
            }
            (None, None) => {}
        }
        let builder = auth_oauth2::catalogue::builder(&self.name, &spec, &self.client_id)?;
        self.configure(builder, Some(secret)).build()
    }

    /// Builds a catalogue provider: the entry, with the section's endpoint
    /// overrides, scopes, redirect URI and secret.
    fn catalogue(&self, secret: Option<SecretString>) -> auth_core::Result<OAuth2Provider> {
        let spec = self.with_overrides(
            self.entry
                .as_deref()
                .expect("a catalogue section has its entry")
                .clone(),
        );
        let builder = auth_oauth2::catalogue::builder(&self.name, &spec, &self.client_id)?;
        self.configure(builder, secret).build()
    }

    /// Builds a `kind = "oauth2"` provider (for `login --device`, which
    /// needs the device flow of this concrete type).
    pub(crate) async fn build_oauth2(&self) -> CliResult<OAuth2Provider> {
        let secret = self.client_secret()?;
        self.oauth2(secret.as_ref()).await
    }

    async fn oauth2(&self, secret: Option<&SecretString>) -> CliResult<OAuth2Provider> {
        let library = |e: auth_core::Error| self.library_error(&e);
        let urls = self.urls.clone();
        let id = ProviderId::new(&self.name).map_err(library)?;
        // A client credentials provider never sends anyone to authorize:
        // its token URL stands in for the authorize URL it has no use for.
        let authorize = match (urls.authorize, self.grant) {
            (None, Grant::ClientCredentials) => urls.token.clone(),
            (authorize, _) => authorize,
        };
        let mut builder = match (&self.issuer, authorize, urls.token) {
            (Some(issuer), _, _) => {
                let issuer = Url::parse(issuer).map_err(|e| {
                    self.section()
                        .error("issuer", format!("not a valid URL ({e})"))
                })?;
                OAuth2Provider::discover(id, &self.client_id, &issuer, HttpConfig::default())
                    .await
                    .map_err(library)?
            }
            (None, Some(authorize), Some(token)) => {
                let mut endpoints = Endpoints::new(authorize, token);
                if let Some(url) = urls.introspect {
                    endpoints = endpoints.with_introspection(url);
                }
                if let Some(url) = urls.revoke {
                    endpoints = endpoints.with_revocation(url);
                }
                if let Some(url) = urls.device {
                    endpoints = endpoints.with_device_authorization(url);
                }
                OAuth2Provider::builder(id, &self.client_id).endpoints(endpoints)
            }
            _ => {
                return Err(self.section().error(
                    "token_url",
                    "missing: give issuer, or authorize_url and token_url",
                ));
            }
        };
        builder = builder
            .client_auth(self.auth_method)
            .redirect_uri(self.redirect_uri.as_str())
            .default_scopes(self.scopes.clone());
        if self.grant == Grant::ClientCredentials {
            let mut grant = ClientCredentials::new().scopes(self.scopes.clone());
            if let Some(audience) = &self.audience {
                grant = grant.audience(audience);
            }
            if let Some(resource) = &self.resource {
                grant = grant.resource(resource);
            }
            builder = builder.client_credentials(grant);
        }
        if let Some(secret) = secret {
            builder = builder.client_secret(secret.clone());
        }
        builder.build().map_err(library)
    }
}
