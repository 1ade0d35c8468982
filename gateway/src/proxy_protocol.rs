//! `listeners[].proxy_protocol`: the PROXY protocol header (v1 text, v2 binary) a load balancer
//! such as HAProxy (`send-proxy`, `send-proxy-v2`) or an AWS NLB sends at the start of each
//! connection, before TLS. Parsed by the `proxy-header` crate from a bounded buffer; the bytes
//! read past the header are replayed to TLS or HTTP by [`Prefixed`].
//!
//! The header's source address becomes the connection's peer. A v2 `LOCAL` header (a health
//! check from the balancer itself), a v1 `UNKNOWN` one and a v2 `AF_UNIX` one keep the socket
//! peer. TLVs are ignored.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use proxy_header::{ParseConfig, ProxyHeader};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::config::ProxyProtocol;

/// The most bytes read for a header: a v1 header is at most 107 bytes; v2 is 16 bytes plus
/// addresses (at most 216) plus TLVs, which load balancers keep short (AWS NLB's VPC endpoint
/// id, HAProxy's SSL facts). A longer header closes the connection.
pub const MAX_HEADER_BYTES: usize = 1024;

/// Why a connection's PROXY header was refused.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// The bytes are not a PROXY header of an accepted version.
    #[error("not a valid PROXY protocol header ({0})")]
    Invalid(&'static str),
    /// The header is longer than [`MAX_HEADER_BYTES`].
    #[error("PROXY protocol header longer than {MAX_HEADER_BYTES} bytes")]
    TooLong,
    /// The connection ended before the header did.
    #[error("connection closed before the PROXY protocol header ended")]
    Closed,
    /// Reading failed.
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
}

/// A parsed header: the client's address, if it names one, and the bytes read after it.
#[derive(Debug)]
pub struct Header {
    /// The source address (`None`: v2 `LOCAL`, v1 `UNKNOWN`, `AF_UNIX`; keep the socket peer).
    pub source: Option<SocketAddr>,
    /// Bytes that followed the header in the same reads (the start of TLS or HTTP).
    pub rest: Vec<u8>,
}

/// Parses `buf` as far as it goes: `Ok(None)` when more bytes are needed.
pub fn parse(buf: &[u8], accept: ProxyProtocol) -> Result<Option<(Header, usize)>, HeaderError> {
    let config = ParseConfig {
        include_tlvs: false,
        allow_v1: accept != ProxyProtocol::V2,
        allow_v2: accept != ProxyProtocol::V1,
    };
    match ProxyHeader::parse(buf, config) {
        Ok((h, used)) => Ok(Some((
            Header {
                source: h.proxied_address().map(|a| a.source),
                rest: Vec::new(),
            },
            used,
        ))),
        // A complete v1 line that still reads as short is malformed (`PROXY TCP4 x\r\n`).
        Err(proxy_header::Error::BufferTooShort)
            if buf.starts_with(b"PROXY ") && buf.windows(2).any(|w| w == b"\r\n") =>
        {
            Err(HeaderError::Invalid("malformed v1 line"))
        }
        Err(proxy_header::Error::BufferTooShort) => Ok(None),
        Err(proxy_header::Error::Invalid) => Err(HeaderError::Invalid(match accept {
            ProxyProtocol::V1 => "expected v1",
            ProxyProtocol::V2 => "expected v2",
            ProxyProtocol::Any => "expected v1 or v2",
        })),
        Err(proxy_header::Error::HeaderTooBig) => Err(HeaderError::TooLong),
        Err(_) => Err(HeaderError::Invalid("unsupported addresses")),
    }
}

/// Reads one header from `io`, never more than [`MAX_HEADER_BYTES`] (the caller bounds the
/// time).
pub async fn read<I: AsyncRead + Unpin>(
    io: &mut I,
    accept: ProxyProtocol,
) -> Result<Header, HeaderError> {
    let mut buf = Vec::with_capacity(MAX_HEADER_BYTES);
    let mut chunk = [0u8; MAX_HEADER_BYTES];
    loop {
        let room = chunk
            .get_mut(..MAX_HEADER_BYTES - buf.len())
            .unwrap_or_default();
        if room.is_empty() {
            return Err(HeaderError::TooLong);
        }
        let n = io.read(room).await?;
        if n == 0 {
            return Err(HeaderError::Closed);
        }
        buf.extend_from_slice(room.get(..n).unwrap_or_default());
        if let Some((mut header, used)) = parse(&buf, accept)? {
            header.rest = buf.split_off(used.min(buf.len()));
            return Ok(header);
        }
    }
}

pin_project_lite::pin_project! {
    /// A stream whose first bytes were already read: replays them, then reads on.
    pub struct Prefixed<I> {
        prefix: Vec<u8>,
        at: usize,
        #[pin]
        inner: I,
    }
}

impl<I> Prefixed<I> {
    /// `inner`, with `prefix` read first.
    pub fn new(prefix: Vec<u8>, inner: I) -> Self {
        Prefixed {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<I: AsyncRead> AsyncRead for Prefixed<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        if let Some(left) = this.prefix.get(*this.at..).filter(|l| !l.is_empty()) {
            let n = left.len().min(buf.remaining());
            buf.put_slice(left.get(..n).unwrap_or_default());
            *this.at += n;
            if *this.at == this.prefix.len() {
                *this.prefix = Vec::new();
                *this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        this.inner.poll_read(cx, buf)
    }
}

impl<I: AsyncWrite> AsyncWrite for Prefixed<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2_TCP4: &[u8] = &[
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, // signature
        0x21, 0x11, 0x00, 0x0c, // PROXY, TCP4, 12 bytes
        192, 0, 2, 7, 10, 0, 0, 1, // source, destination
        0x30, 0x39, 0x01, 0xbb, // 12345, 443
    ];

    #[test]
    fn v1_v2_local_and_partial() {
        let v1 = b"PROXY TCP4 192.0.2.7 10.0.0.1 12345 443\r\nGET / HTTP/1.1\r\n";
        let (h, used) = parse(v1, ProxyProtocol::Any).unwrap().unwrap();
        assert_eq!(h.source, Some("192.0.2.7:12345".parse().unwrap()));
        assert_eq!(&v1[used..], b"GET / HTTP/1.1\r\n");
        assert!(parse(v1, ProxyProtocol::V2).is_err());
        let v6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 1 2\r\n";
        let (h, _) = parse(v6, ProxyProtocol::V1).unwrap().unwrap();
        assert_eq!(h.source, Some("[2001:db8::7]:1".parse().unwrap()));
        let (h, _) = parse(b"PROXY UNKNOWN\r\n", ProxyProtocol::V1)
            .unwrap()
            .unwrap();
        assert_eq!(h.source, None);

        let (h, used) = parse(V2_TCP4, ProxyProtocol::V2).unwrap().unwrap();
        assert_eq!(h.source, Some("192.0.2.7:12345".parse().unwrap()));
        assert_eq!(used, V2_TCP4.len());
        assert!(parse(V2_TCP4, ProxyProtocol::V1).is_err());
        let mut local = V2_TCP4[..16].to_vec();
        local[12] = 0x20;
        local[13] = 0x00;
        local[15] = 0x00;
        let (h, _) = parse(&local, ProxyProtocol::Any).unwrap().unwrap();
        assert_eq!(h.source, None, "LOCAL keeps the socket peer");

        // Every prefix of a header asks for more; none panics.
        for n in 0..V2_TCP4.len() {
            assert!(matches!(parse(&V2_TCP4[..n], ProxyProtocol::Any), Ok(None)));
        }
        for n in 0..v1.len().min(40) {
            assert!(
                matches!(parse(&v1[..n], ProxyProtocol::Any), Ok(None)),
                "{n}"
            );
        }
        assert!(parse(b"GET / HTTP/1.1\r\n", ProxyProtocol::Any).is_err());
        assert!(parse(b"PROXY TCP4 not-an-address\r\n\r\n", ProxyProtocol::Any).is_err());
        assert!(parse(b"\x16\x03\x01\x02\x00", ProxyProtocol::Any).is_err());
    }

    #[tokio::test]
    async fn read_is_bounded_and_keeps_what_follows() {
        let mut input = V2_TCP4.to_vec();
        input.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let mut io = &input[..];
        let h = read(&mut io, ProxyProtocol::Any).await.unwrap();
        assert_eq!(h.rest, b"GET / HTTP/1.1\r\n");
        let mut replay = Prefixed::new(h.rest, &b"Host: x\r\n"[..]);
        let mut all = String::new();
        replay.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "GET / HTTP/1.1\r\nHost: x\r\n");

        // A v1 line that never ends.
        let long = format!("PROXY TCP4 {}", "1".repeat(4000));
        let mut io = long.as_bytes();
        assert!(read(&mut io, ProxyProtocol::V1).await.is_err());
        // A v2 header that declares more than the bound.
        let mut big = V2_TCP4[..16].to_vec();
        big[14] = 0xff;
        big.extend(std::iter::repeat_n(0u8, 2000));
        let mut io = &big[..];
        assert!(matches!(
            read(&mut io, ProxyProtocol::V2).await,
            Err(HeaderError::TooLong)
        ));
        let mut io = &b"PROXY TCP4 1.2.3.4"[..];
        assert!(matches!(
            read(&mut io, ProxyProtocol::V1).await,
            Err(HeaderError::Closed)
        ));
    }
}
