//! Faithful local emulators of the two authorization servers that guard
//! Fitbit data: the **legacy Fitbit OAuth 2.0 server** (switched off on
//! 2026-11-02) and the **Google OAuth 2.0 server** of the Google Health API.
//!
//! They run in-process on `127.0.0.1`, one [`Emulator`] serving both, for
//! tests, examples and benchmarks, or standalone ([`run_standalone`], the
//! `auth-emulator` binary) for people testing their own apps. The emulator is
//! strict where the real servers are strict, and it can inject the faults real
//! networks produce. It depends on none of the client crates of this
//! workspace, so each side checks the other. The rule it applies to a spent
//! refresh token (rotation, the replay window, reuse), in its Fitbit server
//! and its catalogue profiles alike, comes from
//! `token-keeper-rotation-rule`, a crate with no dependencies that the
//! workspace's test fakes share with it.
//!
//! It can also play any entry of the provider catalogue (`auth-catalogue`):
//! a [`profile::ProfileEmulator`] serves one or several entries, each under
//! its own path, with the entry's client authentication, PKCE, scopes,
//! rotation and replay window, response quirks and error bodies
//! ([`run_standalone_profiles`], or `auth-emulator --provider NAME`).
//!
//! # Example
//!
//! ```
//! use auth_emulator::{Emulator, demo};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let emulator = Emulator::builder().with_demo_clients().start().await?;
//! let tokens = emulator.seed_fitbit_grant(demo::FITBIT_PUBLIC_CLIENT_ID, "26FWFL", &["sleep"]);
//!
//! // A public Fitbit app refreshes with client_id in the body and no secret.
//! let refresh = tokens.refresh_token.expect("seeded grants have a refresh token");
//! let answer: serde_json::Value = reqwest::Client::new()
//!     .post(emulator.fitbit_endpoints().token)
//!     .form(&[
//!         ("grant_type", "refresh_token"),
//!         ("refresh_token", refresh.as_str()),
//!         ("client_id", demo::FITBIT_PUBLIC_CLIENT_ID),
//!     ])
//!     .send()
//!     .await?
//!     .json()
//!     .await?;
//! assert_eq!(answer["user_id"], "26FWFL");
//! assert_ne!(answer["refresh_token"], refresh.as_str(), "Fitbit rotates refresh tokens");
//! assert_eq!(emulator.counters().fitbit_token_refresh, 1);
//! emulator.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Emulated behaviours
//!
//! Sources are sections of the repository's `docs/providers-facts.md` (§2 legacy Fitbit,
//! §3 Google, §4 standards).
//!
//! | Behaviour | Emulator | Source |
//! |---|---|---|
//! | Fitbit endpoints | `GET /oauth2/authorize`, `POST /oauth2/token`, `POST /1.1/oauth2/introspect`, `POST /oauth2/revoke` | §2 endpoints table |
//! | Fitbit authorize parameters | `client_id`, `response_type=code`, space-delimited known scopes, `redirect_uri` exact (optional when exactly one is registered), `state` verbatim, `prompt` in `none`/`consent`/`login`/`login consent` | §2 authorize query |
//! | No redirect on invalid parameters | HTML page, status 400, no `Location` | §2 "Fitbit never redirects back on them" |
//! | Denied consent | redirect with `error=access_denied` and `state` | §2 |
//! | Fitbit redirect | `code`, `state` and the `#_=_` fragment the real server appends | §2 authorize (the fragment: a team decision, not in `docs/providers-facts.md`) |
//! | PKCE | `S256` and `plain`; optional; verifier 43–128 characters; mismatch is `invalid_grant` | §2, §4 RFC 7636 |
//! | Codes | single use, 10 minutes, bound to client, redirect URI and challenge | §2 token request |
//! | Fitbit client authentication | Server apps: `Authorization: Basic` only (a secret in the body is refused); public apps: `client_id` in the body, no secret | §2 application types |
//! | Fitbit token response | `access_token`, `expires_in` (28800 by default, or the requested `expires_in`), `refresh_token`, space-separated `scope`, `token_type`, `user_id` | §2 |
//! | Scope subsets | a user may untick scopes ([`Emulator::set_next_granted_scopes`]) | §2 "may be a subset" |
//! | Refresh rotation | single-use refresh tokens, a new pair on every refresh, one active refresh token per user per app | §2 refresh tokens |
//! | Replay window | an identical repeat answers the byte-identical earlier response until the new access or refresh token is used, within 120 s by default | §2 refresh tokens |
//! | Strict mode | window off: any reuse revokes the whole grant of that user for that app | §5 (oidc-provider "revokes the whole grant"), §4 (RFC 9700 rotation) |
//! | Fitbit error body | `{"errors":[{"errorType","message"}],"success":false}`; the message echoes a rejected token, as Fitbit does | §2 error body |
//! | Google-shaped Fitbit errors | [`Fault::GoogleApiError`] | §2 "Since 2026 some responses come in Google's shape" |
//! | Fitbit 409 | [`Fault::Status`]`(409)` | §2 swagger 409 |
//! | Introspection | Bearer access token required; active: braces scope `{ACTIVITY=READ_WRITE, …}`, `exp`/`iat` in milliseconds; otherwise `{"active":false}` | §2 introspect |
//! | Fitbit revocation | any token revokes all of the user's tokens for the app; 200 with an empty body; an unknown token is not an error | §2 revoke, §4 RFC 7009 |
//! | Rate limits | 150 per user (per client while the user is unknown) per clock hour of the emulator's clock; `Fitbit-Rate-Limit-Limit`/`-Remaining`/`-Reset` on every token, introspect and revoke response; 429 with errorType `system` and `Retry-After` | §2 rate limits |
//! | Retired mode | every legacy endpoint answers `410 Gone` before anything else (faults included) | §1 |
//! | Google endpoints | `GET /o/oauth2/v2/auth`, `POST /token`, `POST /revoke`, `GET`/`POST /tokeninfo`, `GET /.well-known/openid-configuration` | §3 table |
//! | Google scopes | `googlehealth.*` (read-write, `.readonly`, `.writeonly`; `ecg`/`irn` read-only) and `openid`/`email`/`profile` | §3 scopes |
//! | Offline access | a refresh token only with `access_type=offline`, and only on the first consent unless `prompt=consent` | §3 |
//! | Google refresh | no `refresh_token` in the answer; the refresh token is not rotated and stays valid | §3 |
//! | Google client authentication | `client_secret_post` or `client_secret_basic` | §3, §4 RFC 6749 |
//! | Google errors | RFC 6749 body, for example `invalid_grant` / "Token has been expired or revoked." | §3 |
//! | Access token lifetimes | Fitbit 8 h, Google 3599 s | §2, §3 |
//! | Testing-status apps | optional refresh-token expiry ([`EmulatorBuilder::google_refresh_token_lifetime`]) | §3 "expire after 7 days" |
//! | Discovery | RFC 8414 fields pointing at the emulator, `code_challenge_methods_supported: ["S256","plain"]` | §3, §4 RFC 8414 |
//! | Google device flow | `POST /device/code` (`client_id`, secret, `scope`) answers `device_code`, `user_code` (`XXXX-XXXX`), **`verification_url`** (not `verification_uri`, and no `verification_uri_complete`), `expires_in: 1800`, `interval` (5 s, [`EmulatorBuilder::google_device_interval`]); the device grant on `POST /token`; `device_authorization_endpoint` in discovery | Google, "OAuth 2.0 for TV and Limited-Input Device Applications" (not in `docs/providers-facts.md`) |
//! | Device flow scopes | only `openid`, `email`, `profile`, `userinfo.email`, `userinfo.profile`, `drive.appdata`, `drive.file`, `youtube`, `youtube.readonly`; anything else (every Google Health scope) is `400 invalid_scope` at `/device/code` | Google, same page, "Allowed scopes" (the list as known when written; it is data in `scopes.rs`) |
//! | Device polls | `428 authorization_pending`, `403 slow_down` (a poll sooner than the interval), `403 access_denied`, `400 expired_token`, then `invalid_grant` once the code is spent; a refresh token always | Google, same page, "Errors" (the statuses of `slow_down` and `expired_token` are as client-library reports show them: unconfirmed) |
//! | The person's device page | `GET`/`POST /device` with `user_code` (any case, dashes optional) answers the consent as queued ([`Emulator::deny_next_authorization`], [`Emulator::set_next_user`]) | a team decision: Google's page needs a signed-in person |
//! | `iss` in the Google callback | the issuer, as in RFC 9207 | §4 RFC 9207 |
//! | Fitbit profile (resource) | `GET /1/user/-/profile.json` with `Authorization: Bearer`: `{"user":{"encodedId",…}}`; 401 with errorType `invalid_token` (unknown, revoked or [invalidated](Emulator::invalidate_access_token) token, no header) or `expired_token`, no `WWW-Authenticate` challenge; 403 `insufficient_scope` without `profile`; the rate-limit headers and quota; 410 in retired mode | §2 error body (`expired_token`, `invalid_token`), rate limits; §1 410 |
//! | Google Health identity (resource) | `GET /v4/users/me/identity` with `Authorization: Bearer`: `legacyUserId` (the Fitbit user id; the Google user id unless [set otherwise](Emulator::set_legacy_user_id), absent for no Fitbit history) and `healthUserId`; 401 with `WWW-Authenticate: Bearer … error="invalid_token"` and a Google API error body | §3 identity across the move (migration guide, "Data Access"); §2 Google error shape |
//! | Exact redirect URIs, loopback | compared character for character; the demo clients use `http://127.0.0.1:8976/callback` | §4 RFC 9700, RFC 8252 |
//!
//! Decisions where `docs/providers-facts.md` says nothing:
//! - The Google issuer is the base URL without its trailing slash
//!   (`http://127.0.0.1:PORT`), like `https://accounts.google.com`.
//! - The retired answer uses the Fitbit error body with errorType `request`
//!   and a message naming 2026-11-02 and the Google Health API.
//! - The consent pages are not rate limited and carry no rate-limit headers:
//!   they belong to `www.fitbit.com` and `accounts.google.com`, not the API.
//!   Neither do `410 Gone` answers (the server is gone) nor HTML proxy pages.
//! - Injected 5xx answers use errorType `system` on Fitbit and `server_error`
//!   (`temporarily_unavailable` for 503) on Google.
//! - A code is used up by any exchange attempt of its own client, successful
//!   or not.
//! - A repeated request parameter is refused (RFC 6749 §3.1), and a
//!   non-empty POST body must be `application/x-www-form-urlencoded`.
//! - A new consent (or seeded grant) of a user for a Fitbit app supersedes
//!   the refresh token of the earlier one; its access tokens live on.
//! - Revoking a token of another app is refused with `invalid_request`; an
//!   unknown token is revoked "successfully" (RFC 7009).
//! - Google consent with `prompt=none` is granted like any other.
//! - Google tokens carry no `id_token` and there is no userinfo endpoint.
//! - The profile body carries only `encodedId`, `displayName` and
//!   `timezone`; `healthUserId` is an opaque 20-digit string derived from
//!   the Google user id. Google Health scopes are not checked on the
//!   identity endpoint (its required scope is not documented in
//!   `docs/providers-facts.md`).
//!
//! # Layers
//!
//! The modules form a stack; each imports only from its own layer and the
//! ones below (the crate's `tests/layers.rs` checks it), top to bottom:
//!
//! 1. **The public face**: this crate root and [`profile`], which only
//!    re-export.
//! 2. **The server** (`server`): the emulator's state, which holds the
//!    providers and what the server itself keeps (clock, consent queue,
//!    counters, last requests, queued faults); the router and its pipeline;
//!    faults and held answers; counters; the accept loop; the builder, the
//!    [`Emulator`] handle and the standalone runner; the server of catalogue
//!    profiles.
//! 3. **The providers** (`providers`): the legacy Fitbit server (with its
//!    rate limits), the Google server (with its device logins and the
//!    Google Health identities), the resource endpoints, and the catalogue
//!    profiles. Each owns its state behind a small type whose fields are
//!    private; for one request the server lends it the clock's time, the
//!    consent queue and a place to report events for the counters.
//! 4. **The OAuth primitives** (`oauth`, with `demo` and `error`): request
//!    parameters, PKCE, client authentication, scopes, codes and grants,
//!    token strings, replies and error bodies, the clock, endpoint names,
//!    the consent queue.
//!
//! # Faults and observation
//!
//! [`Emulator::inject`] queues a [`Fault`] for the next requests to an
//! [`Endpoint`]. [`Emulator::counters`] and [`Emulator::last_request`] tell a
//! test what reached the server; [`Emulator::advance_time`] moves the
//! emulator's own clock for expiry tests without sleeping.

pub mod demo;
mod error;
mod oauth;
pub mod profile;
mod providers;
mod server;

pub use error::EmulatorError;
pub use oauth::endpoint::Endpoint;
pub use oauth::grants::IssuedTokens;
pub use server::builder::{ClientConfig, EmulatorBuilder};
pub use server::counters::{Counters, RecordedRequest};
pub use server::emulator::{Emulator, FitbitEndpoints, GoogleEndpoints};
pub use server::fault::{Fault, HeldAnswer, Release};
pub use server::standalone::{run_standalone, run_standalone_profiles};
