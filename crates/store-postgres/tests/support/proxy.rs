//! A TCP proxy that can be frozen: while frozen it forwards nothing in
//! either direction (bytes already read wait in it), like a network
//! partition; thawed, it delivers what it holds and goes on, like a healed
//! one. The sockets stay open throughout, so neither side sees an error.
//!
//! It also counts what its clients send: it reads the PostgreSQL wire
//! protocol from client to server and counts statements (`Execute`
//! messages of the extended protocol, one per statement sqlx runs, and
//! `Query` messages of the simple one) and round trips (`Sync` and `Query`
//! messages, each of which the client waits on; a statement sqlx prepares
//! for the first time costs one more). The test cluster runs without TLS,
//! so the stream is plain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy; dropping it stops accepting.
pub(crate) struct FreezableProxy {
    addr: SocketAddr,
    frozen: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
    counts: Arc<Counts>,
}

/// What the clients of a proxy have sent.
#[derive(Debug, Default)]
struct Counts {
    statements: AtomicUsize,
    round_trips: AtomicUsize,
}

impl FreezableProxy {
    /// Starts a proxy on a free loopback port to `target`.
    pub(crate) async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (frozen, watching) = watch::channel(false);
        let counts = Arc::new(Counts::default());
        let counter = Arc::clone(&counts);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let watching = watching.clone();
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let counting = Some(Counter::new(counter));
                    tokio::join!(
                        pump(cr, sw, watching.clone(), counting),
                        pump(sr, cw, watching, None)
                    );
                });
            }
        });
        Self {
            addr,
            frozen,
            accept,
            counts,
        }
    }

    /// The port to connect to instead of the target's.
    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }

    /// How many statements the clients have sent so far.
    pub(crate) fn statements(&self) -> usize {
        self.counts.statements.load(Ordering::SeqCst)
    }

    /// How many round trips the clients have started so far.
    pub(crate) fn round_trips(&self) -> usize {
        self.counts.round_trips.load(Ordering::SeqCst)
    }

    /// Stops all traffic.
    pub(crate) fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Lets traffic flow again.
    pub(crate) fn thaw(&self) {
        self.frozen.send_replace(false);
    }
}

impl Drop for FreezableProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
    mut counting: Option<Counter>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(counter) = counting.as_mut() {
            counter.feed(&buf[..n]);
        }
        // Read while thawed, but frozen since: hold the bytes.
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Counts statements and round trips in a client's byte stream.
struct Counter {
    counts: Arc<Counts>,
    /// Bytes of the message header read so far.
    header: Vec<u8>,
    /// Bytes of the current message's body still to skip.
    skip: usize,
    /// Whether the next message is a start-up message (no type byte): the
    /// first one, and the one after an SSL or GSS encryption request.
    untyped: bool,
}

impl Counter {
    /// The request codes after which another untyped message follows.
    const SSL_REQUEST: u32 = 80_877_103;
    const GSS_REQUEST: u32 = 80_877_104;

    fn new(counts: Arc<Counts>) -> Self {
        Self {
            counts,
            header: Vec::new(),
            skip: 0,
            untyped: true,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let want = if self.untyped { 8 } else { 5 };
            let n = (want - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.header.len() < want {
                return;
            }
            let header = std::mem::take(&mut self.header);
            if self.untyped {
                let len = u32::from_be_bytes(header[0..4].try_into().unwrap()) as usize;
                let code = u32::from_be_bytes(header[4..8].try_into().unwrap());
                self.untyped = matches!(code, Self::SSL_REQUEST | Self::GSS_REQUEST);
                self.skip = len.saturating_sub(8);
            } else {
                let len = u32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
                if matches!(header[0], b'E' | b'Q') {
                    self.counts.statements.fetch_add(1, Ordering::SeqCst);
                }
                if matches!(header[0], b'S' | b'Q') {
                    self.counts.round_trips.fetch_add(1, Ordering::SeqCst);
                }
                self.skip = len.saturating_sub(4);
            }
        }
    }
}
