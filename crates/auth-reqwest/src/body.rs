//! Peeking at the start of a response body without taking it from the
//! caller: read up to a bound, then rebuild the response so that its body
//! yields the bytes read followed by the rest, unread. It must never buffer
//! more than one chunk past the bound.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use reqwest::{Body, Response, ResponseBuilderExt};

/// Reads at least `limit` bytes of `response`'s body (or all of it, if
/// shorter) and returns the bytes read with a response that still has the
/// whole body, and the same status, headers, URL and extensions.
pub(crate) async fn peek(
    mut response: Response,
    limit: usize,
) -> reqwest::Result<(Bytes, Response)> {
    let url = response.url().clone();
    let mut read = BytesMut::new();
    let mut ended = false;
    while read.len() < limit {
        match response.chunk().await? {
            Some(chunk) => read.extend_from_slice(&chunk),
            None => {
                ended = true;
                break;
            }
        }
    }
    let read = read.freeze();
    let (mut parts, rest) = http::Response::<Body>::from(response).into_parts();
    let body = if ended {
        Body::from(read.clone())
    } else {
        Body::wrap(Prefixed {
            prefix: Some(read.clone()),
            rest,
        })
    };
    // The conversion drops the URL; put it back the public way.
    let (with_url, ()) = http::Response::builder()
        .url(url)
        .body(())
        .expect("a builder with only a URL extension is valid")
        .into_parts();
    parts.extensions.extend(with_url.extensions);
    Ok((
        read,
        Response::from(http::Response::from_parts(parts, body)),
    ))
}

/// A body that yields `prefix`, then `rest`.
struct Prefixed {
    prefix: Option<Bytes>,
    rest: Body,
}

impl HttpBody for Prefixed {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        if let Some(prefix) = self.prefix.take()
            && !prefix.is_empty()
        {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.as_ref().is_none_or(Bytes::is_empty) && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let prefix = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + prefix);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + prefix);
        }
        hint
    }
}
