//! Building the provider a checked section describes. Reads a secret from
//! the environment only here, so a missing variable for one provider never
//! breaks commands on another.

use std::sync::Arc;

use auth_catalogue::ProviderSpec;
use auth_core::TokenProvider;
use auth_fitbit::{FitbitProvider, Scope};
use auth_oauth2::{ClientCredentials, HttpConfig, OAuth2Provider, OAuth2ProviderBuilder};
use secrecy::SecretString;

use super::ProviderConfig;
use super::kinds::{CatalogueEntry, Fitbit, GoogleHealth, KindConfig, OAuth2, OAuth2Grant, Server};
use super::secret::Secret;
use super::section::Section;
use crate::exit::{CliResult, Failure, Target};

impl ProviderConfig {
    fn section(&self) -> Section<'_> {
        Section {
            file: &self.file,
            name: self.name(),
        }
    }

    /// Reads `secret`, from the environment if so configured.
    fn read(&self, secret: Option<&Secret>) -> CliResult<Option<SecretString>> {
        secret.map(|s| s.read(&self.section())).transpose()
    }

    /// Fails as [`build`](Self::build) would on a client secret missing from
    /// the environment, without building anything.
    pub(crate) fn check_secret(&self) -> CliResult<()> {
        self.read(self.kind.secret()).map(drop)
    }

    /// A library error while building, classified, with the file and the
    /// section.
    fn library_error(&self, err: &auth_core::Error) -> Failure {
        let target = Target {
            provider: self.name(),
            account: None,
        };
        Failure::from_auth(err, &target).context(format!(
            "{}: [providers.{}]",
            self.file,
            self.name()
        ))
    }

    /// Builds the provider. For `oauth2` with an issuer this fetches the
    /// server's metadata. Fails first on a secret missing from the
    /// environment.
    pub(crate) async fn build(&self) -> CliResult<Arc<dyn TokenProvider>> {
        let library = |e: auth_core::Error| self.library_error(&e);
        let provider: Arc<dyn TokenProvider> = match &self.kind {
            KindConfig::Fitbit(f) => {
                let secret = self.read(f.app.secret())?;
                Arc::new(self.fitbit(f, secret).map_err(library)?)
            }
            KindConfig::GoogleHealth(g) => {
                let secret = g.secret.read(&self.section())?;
                Arc::new(self.google_health(g, secret).map_err(library)?)
            }
            KindConfig::OAuth2(o) => Arc::new(self.oauth2(o).await?),
            KindConfig::Catalogue(c) => {
                let secret = self.read(c.secret.as_ref())?;
                Arc::new(self.catalogue(c, secret).map_err(library)?)
            }
        };
        Ok(provider)
    }

    /// The section's redirect URI, API base URLs, scopes, secret and
    /// `expires_in` on `builder`.
    fn configure(
        &self,
        mut builder: OAuth2ProviderBuilder,
        secret: Option<SecretString>,
        expires_in: Option<u64>,
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
        if let Some(seconds) = expires_in {
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
    fn fitbit(
        &self,
        f: &Fitbit,
        secret: Option<SecretString>,
    ) -> auth_core::Result<OAuth2Provider> {
        let spec = f.urls.apply(Self::builtin("fitbit")?);
        let builder = FitbitProvider::from_entry(self.name(), &spec, &self.client_id)?
            .client_auth(f.app.app_type().client_auth());
        let mut builder = self.configure(builder, secret, f.expires_in);
        if !self.scopes.is_empty() {
            builder = builder.default_scopes(self.scopes.iter().map(|s| Scope::parse(s)));
        }
        builder.build()
    }

    /// Builds a `kind = "google-health"` provider: the `google-health`
    /// entry with the section's URLs. Google's issuer is the origin of its
    /// authorize endpoint; the same holds for the emulator.
    fn google_health(
        &self,
        g: &GoogleHealth,
        secret: SecretString,
    ) -> auth_core::Result<OAuth2Provider> {
        let mut spec = g.urls.apply(Self::builtin("google-health")?);
        match (&g.issuer, &g.urls.authorize) {
            (Some(issuer), _) => {
                spec.endpoints.issuer = Some(issuer.trim_end_matches('/').to_owned());
            }
            (None, Some(authorize)) => {
                spec.endpoints.issuer = Some(authorize.origin().ascii_serialization());
            }
            (None, None) => {}
        }
        let builder = auth_oauth2::catalogue::builder(self.name(), &spec, &self.client_id)?;
        self.configure(builder, Some(secret), None).build()
    }

    /// Builds a catalogue provider: the entry, with the section's endpoint
    /// overrides, issuer, scopes, redirect URI and secret.
    fn catalogue(
        &self,
        c: &CatalogueEntry,
        secret: Option<SecretString>,
    ) -> auth_core::Result<OAuth2Provider> {
        let mut spec = c.urls.apply((*c.entry).clone());
        if let Some(issuer) = &c.issuer {
            spec.endpoints.issuer = Some(issuer.clone());
        }
        let builder = auth_oauth2::catalogue::builder(self.name(), &spec, &self.client_id)?;
        self.configure(builder, secret, c.expires_in).build()
    }

    /// Builds a `kind = "oauth2"` provider (for `login --device`, which
    /// needs the device flow of this concrete type); `None` for another
    /// kind.
    pub(crate) async fn build_oauth2(&self) -> CliResult<Option<OAuth2Provider>> {
        match &self.kind {
            KindConfig::OAuth2(o) => self.oauth2(o).await.map(Some),
            _ => Ok(None),
        }
    }

    async fn oauth2(&self, o: &OAuth2) -> CliResult<OAuth2Provider> {
        let secret = self.read(o.client.secret())?;
        let library = |e: auth_core::Error| self.library_error(&e);
        let mut builder = match &o.server {
            Server::Discovery(issuer) => OAuth2Provider::discover(
                self.id.clone(),
                &self.client_id,
                issuer,
                HttpConfig::default(),
            )
            .await
            .map_err(library)?,
            Server::Endpoints(endpoints) => {
                OAuth2Provider::builder(self.id.clone(), &self.client_id)
                    .endpoints((**endpoints).clone())
            }
        };
        builder = builder
            .client_auth(o.client.auth())
            .redirect_uri(self.redirect_uri.as_str())
            .default_scopes(self.scopes.clone());
        if let OAuth2Grant::ClientCredentials { audience, resource } = &o.grant {
            let mut grant = ClientCredentials::new().scopes(self.scopes.clone());
            if let Some(audience) = audience {
                grant = grant.audience(audience);
            }
            if let Some(resource) = resource {
                grant = grant.resource(resource);
            }
            builder = builder.client_credentials(grant);
        }
        if let Some(secret) = secret {
            builder = builder.client_secret(secret);
        }
        builder.build().map_err(library)
    }
}
