//! Catalogue profiles: the emulator acting as any entry of the provider
//! catalogue ([`auth_catalogue`]), with that entry's behaviour.
//!
//! Each profile is served under its own path, `http://127.0.0.1:PORT/NAME/`,
//! so one [`ProfileEmulator`] serves several. A profile enforces what its
//! entry says, so a client proves it honours the entry:
//!
//! - client authentication: only the entry's method is accepted;
//! - PKCE: required (no challenge, no code), supported, or unsupported (a
//!   challenge is refused);
//! - scopes joined with the entry's separator; without the entry's offline
//!   scopes and authorize parameters no refresh token is issued; the
//!   entry's token and refresh parameters must be sent;
//! - rotation and the replay window, read safely when unknown (rotating,
//!   the old token dead at once, no window), judged by the workspace's
//!   shared rule (`rotation_rule`), every spent token with a window of its
//!   own;
//! - token response quirks (envelopes, string or absent `expires_in`, a
//!   nested user token, extra fields, form answers unless JSON is asked for),
//!   error bodies in the entry's format, and the account id field;
//! - revocation, introspection (in the entry's style), userinfo, the device
//!   flow (approved at once) and a resource endpoint under `NAME/api/`,
//!   where the entry has them.
//!
//! Consent is given at once: the authorize endpoint redirects straight back
//! with a code for a new user.
//!
//! Time is the emulator's own clock, the machine's plus whatever
//! [`ProfileEmulator::advance_time`] added: access-token expiry, replay
//! windows and an absolute `expires_at` all follow it, so a test moves time
//! instead of waiting.

pub use crate::providers::catalogue::{PROFILE_CLIENT_SECRET, ProfileCounters};
pub use crate::server::profiles::{ProfileEmulator, ProfileEmulatorBuilder};
