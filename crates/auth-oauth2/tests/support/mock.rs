//! A local server that answers with canned responses and counts requests.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Response, StatusCode};

/// One canned answer.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Canned {
    pub fn json(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// A running mock server.
pub struct Mock {
    pub base: url::Url,
    pub hits: Arc<AtomicUsize>,
    pub paths: Arc<Mutex<Vec<String>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Mock {
    /// Answers requests in order with `answers`; 599 once they run out.
    pub async fn start(answers: Vec<Canned>) -> Mock {
        let queue = Arc::new(Mutex::new(VecDeque::from(answers)));
        let hits = Arc::new(AtomicUsize::new(0));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let (q, h, p) = (queue.clone(), hits.clone(), paths.clone());
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (q, h, p) = (q.clone(), h.clone(), p.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                p.lock().unwrap().push(req.uri().path().to_owned());
                let canned = q.lock().unwrap().pop_front().unwrap_or(Canned {
                    status: 599,
                    headers: vec![],
                    body: b"no more canned answers".to_vec(),
                });
                let mut builder =
                    Response::builder().status(StatusCode::from_u16(canned.status).unwrap());
                for (name, value) in &canned.headers {
                    builder = builder.header(*name, value);
                }
                builder.body(Body::from(canned.body)).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Mock {
            base: format!("http://{addr}/").parse().unwrap(),
            hits,
            paths,
            _task: task,
        }
    }

    pub fn url(&self, path: &str) -> url::Url {
        self.base.join(path).unwrap()
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}
