//! The demo clients registered by
//! [`EmulatorBuilder::with_demo_clients`](crate::EmulatorBuilder::with_demo_clients)
//! and by the standalone server. They are public knowledge: never use them
//! anywhere but against an emulator.

/// Client id of the demo legacy Fitbit "Server" app (confidential; HTTP Basic).
pub const FITBIT_SERVER_CLIENT_ID: &str = "DEMO-FITBIT-SERVER";
/// Client secret of the demo legacy Fitbit "Server" app.
pub const FITBIT_SERVER_CLIENT_SECRET: &str = "demo-fitbit-server-secret";
/// Client id of the demo legacy Fitbit "Client" app (public; no secret).
pub const FITBIT_PUBLIC_CLIENT_ID: &str = "DEMO-FITBIT-PUBLIC";
/// Client id of the demo Google web client.
pub const GOOGLE_CLIENT_ID: &str = "demo-google.apps.googleusercontent.com";
/// Client secret of the demo Google web client.
pub const GOOGLE_CLIENT_SECRET: &str = "demo-google-secret";
/// The redirect URI registered for all three demo clients (an RFC 8252
/// loopback callback).
pub const REDIRECT_URI: &str = "http://127.0.0.1:8976/callback";
/// The user who consents when no other is queued (the builder's default
/// [`default_user`](crate::EmulatorBuilder::default_user)); the `user_id` of
/// Fitbit's documentation examples.
pub const DEFAULT_USER_ID: &str = "26FWFL";
