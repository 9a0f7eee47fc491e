//! The one public error type: what can go wrong when starting or running the
//! emulator (never a protocol error: those are answers to clients).

/// Why the emulator could not start or keep running.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The listening socket could not be opened.
    #[error(
        "the auth emulator could not listen on 127.0.0.1:{port}; choose another port, or 0 for any free port"
    )]
    Bind {
        /// The port asked for (0 = any).
        port: u16,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A registered redirect URI is not an absolute URL without fragment.
    #[error(
        "redirect URI {uri:?} of client {client_id:?} is invalid: {reason}; register an absolute URL such as http://127.0.0.1:8976/callback"
    )]
    InvalidRedirectUri {
        /// The client it was registered for.
        client_id: String,
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No catalogue entry has this name.
    #[error("the provider catalogue has no entry {name:?}; `authctl providers` lists the entries")]
    UnknownProfile {
        /// The name asked for.
        name: String,
    },
    /// The standalone server could not wait for Ctrl-C.
    #[error("the auth emulator could not install its Ctrl-C handler")]
    Signal(#[source] std::io::Error),
}
