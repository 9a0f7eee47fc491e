//! Who is signed in: the app says, through a closure or an extractor it
//! already has. This crate never invents an identity.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use auth_core::AccountId;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The future [`CurrentUser::current_user`] returns.
pub type UserFuture<'a> = Pin<Box<dyn Future<Output = Option<AccountId>> + Send + 'a>>;

/// Tells the routes who the signed-in user is, or `None` when nobody is.
///
/// Implemented for every `Fn(&Parts) -> Option<AccountId>` (read a request
/// extension your sign-in middleware set, a header your proxy set, ...),
/// and by [`FromExtractor`] for an axum extractor the app already has.
/// Tokens are stored under this account id, for every provider.
pub trait CurrentUser: Send + Sync + 'static {
    /// The signed-in user of this request.
    fn current_user<'a>(&'a self, parts: &'a mut Parts) -> UserFuture<'a>;
}

impl<F> CurrentUser for F
where
    F: Fn(&Parts) -> Option<AccountId> + Send + Sync + 'static,
{
    fn current_user<'a>(&'a self, parts: &'a mut Parts) -> UserFuture<'a> {
        let user = self(parts);
        Box::pin(async move { user })
    }
}

/// A [`CurrentUser`] from an axum extractor `E` (one that needs no app
/// state) and a function that maps what it extracted to the account id. A
/// rejected extraction means nobody is signed in.
///
/// ```
/// use auth_axum::FromExtractor;
/// use auth_core::AccountId;
/// use axum::http::HeaderMap;
///
/// // Here a trusted proxy names the user in a header.
/// let user = FromExtractor::new(|headers: HeaderMap| {
///     let name = headers.get("x-user")?.to_str().ok()?;
///     AccountId::new(name).ok()
/// });
/// # let _: &dyn auth_axum::CurrentUser = &user;
/// ```
pub struct FromExtractor<E, M> {
    map: M,
    extractor: PhantomData<fn() -> E>,
}

impl<E, M> FromExtractor<E, M> {
    /// Extracts `E`, then maps it with `map`.
    pub fn new(map: M) -> Self {
        Self {
            map,
            extractor: PhantomData,
        }
    }
}

impl<E, M> CurrentUser for FromExtractor<E, M>
where
    E: FromRequestParts<()> + Send + 'static,
    M: Fn(E) -> Option<AccountId> + Send + Sync + 'static,
{
    fn current_user<'a>(&'a self, parts: &'a mut Parts) -> UserFuture<'a> {
        Box::pin(async move {
            let extracted = E::from_request_parts(parts, &()).await.ok()?;
            (self.map)(extracted)
        })
    }
}
