//! Session tokens: the downstream session id (`Mcp-Session-Id`) is the session's own state,
//! sealed with AES-256-GCM, so any replica holding the key can resume it.
//!
//! Wire format (then URL-safe base64 without padding):
//!
//! ```text
//! version (1) | key id (1) | nonce (12) | ciphertext | tag (16)
//! ```
//!
//! The version and key id are authenticated as associated data. The key id is one byte of a hash
//! of the key, so opening usually tries one key; ids can collide, so every key with a matching id
//! is tried. The plaintext is a compact binary encoding of [`Claims`] (a few dozen bytes plus the
//! strings), keeping a token with a handful of HTTP targets well under 1 KB.

use std::fmt;
use std::str::FromStr;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::config::KEY_LEN;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 2 + NONCE_LEN;
/// Longest token (in characters) we try to open; longer ones are rejected before any crypto.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// A random 128-bit session id; shown as 22 URL-safe base64 characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub [u8; 16]);

impl SessionId {
    /// A fresh random id.
    pub fn random() -> Self {
        SessionId(rand::random())
    }

    /// The id's 22 characters, written into `buf`.
    pub(crate) fn text<'a>(&self, buf: &'a mut [u8; 22]) -> &'a str {
        match URL_SAFE_NO_PAD.encode_slice(self.0, buf) {
            Ok(n) => buf
                .get(..n)
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or_default(),
            Err(_) => "",
        }
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text(&mut [0; 22]))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl FromStr for SessionId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.len() != 22 {
            return Err(());
        }
        let mut buf = [0u8; 18];
        let n = URL_SAFE_NO_PAD.decode_slice(s, &mut buf).map_err(|_| ())?;
        <[u8; 16]>::try_from(buf.get(..n).ok_or(())?)
            .map(SessionId)
            .map_err(|_| ())
    }
}

/// What a session knows about one upstream target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetEntry {
    /// The target's name in the route config.
    pub name: String,
    /// The upstream's own session id (`Mcp-Session-Id` the upstream gave us), once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_session: Option<String>,
    /// The upstream endpoint this session is pinned to (e.g. the URL of the chosen replica of an
    /// HTTP target), when the target has more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl TargetEntry {
    /// An entry for `name` with nothing learned yet.
    pub fn new(name: impl Into<String>) -> Self {
        TargetEntry {
            name: name.into(),
            upstream_session: None,
            endpoint: None,
        }
    }
}

/// The sealed contents of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The session's id (also the key of its metadata in the store).
    pub session_id: SessionId,
    /// Creation time, milliseconds since the Unix epoch.
    pub issued_at_ms: u64,
    /// The principal the session is bound to (authenticated subject), if any.
    pub principal: Option<String>,
    /// The replica that owns the session's stdio targets, if it has any.
    pub replica: Option<String>,
    /// Per-target state known when the token was issued.
    pub targets: Vec<TargetEntry>,
}

/// Why a token did not open; logged at debug, never shown to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not base64, too short or too long.
    Malformed,
    /// A token format version we do not speak.
    Version,
    /// No key with its key id, or authentication failed (tampered, or a key we lack).
    Unauthentic,
    /// Authentic but undecodable (should only happen across incompatible versions).
    Corrupt,
}

struct SealKey {
    id: u8,
    cipher: Aes256Gcm,
}

/// The session keys: the first seals, all open.
pub struct Keyring {
    keys: Vec<SealKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.keys.len())
            .finish()
    }
}

fn key_id(key: &[u8; KEY_LEN]) -> u8 {
    let mut h = sha2::Sha256::new();
    h.update(b"switchboard session key id\0");
    h.update(key);
    h.finalize().first().copied().unwrap_or_default()
}

impl Keyring {
    /// A keyring over `keys` (first seals). `None` when `keys` is empty.
    pub fn new(keys: &[[u8; KEY_LEN]]) -> Option<Self> {
        if keys.is_empty() {
            return None;
        }
        Some(Keyring {
            keys: keys
                .iter()
                .map(|k| SealKey {
                    id: key_id(k),
                    cipher: Aes256Gcm::new(k.into()),
                })
                .collect(),
        })
    }

    /// A keyring with one random key (tokens die with the process).
    pub fn random() -> Self {
        let key = rand::random::<[u8; KEY_LEN]>();
        Keyring {
            keys: vec![SealKey {
                id: key_id(&key),
                cipher: Aes256Gcm::new(&key.into()),
            }],
        }
    }

    /// Seals `claims` into a token.
    pub fn seal(&self, claims: &Claims) -> String {
        let mut plain = Vec::with_capacity(64);
        encode_claims(claims, &mut plain);
        self.seal_raw(&plain, b"")
    }

    /// Opens a token sealed by any key of this ring.
    pub fn open(&self, token: &str) -> Result<Claims, TokenError> {
        let plain = self.open_raw(token, b"", MAX_TOKEN_LEN)?;
        decode_claims(&plain).ok_or(TokenError::Corrupt)
    }

    /// Seals `plain` for `domain`, authenticated as associated data beside the header: what
    /// is sealed for one domain never opens as another's (a session token is no peer hop, and
    /// no peer hop a session token). Same wire format as session tokens.
    pub fn seal_for(&self, domain: &[u8], plain: &[u8]) -> String {
        self.seal_raw(plain, domain)
    }

    /// Opens what [`seal_for`](Self::seal_for) sealed for the same `domain`, at most
    /// `max_len` characters long.
    pub fn open_for(
        &self,
        domain: &[u8],
        token: &str,
        max_len: usize,
    ) -> Result<Vec<u8>, TokenError> {
        self.open_raw(token, domain, max_len)
    }

    // Invariants: `new` refuses an empty ring, and AES-GCM only fails on plaintexts over
    // 2^36 bytes (the claims are a few KiB; the manager refuses tokens over MAX_TOKEN_LEN).
    #[allow(clippy::indexing_slicing, clippy::expect_used)]
    fn seal_raw(&self, plain: &[u8], domain: &[u8]) -> String {
        let key = &self.keys[0];
        let nonce: [u8; NONCE_LEN] = rand::random();
        let header = [VERSION, key.id];
        let aad = [&header[..], domain].concat();
        let sealed = key
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of a small buffer cannot fail");
        let mut raw = Vec::with_capacity(HEADER_LEN + sealed.len());
        raw.extend_from_slice(&header);
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(raw)
    }

    fn open_raw(&self, token: &str, domain: &[u8], max_len: usize) -> Result<Vec<u8>, TokenError> {
        if token.len() > max_len {
            return Err(TokenError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Malformed)?;
        if raw.len() < HEADER_LEN + TAG_LEN {
            return Err(TokenError::Malformed);
        }
        let (header, rest) = raw.split_at_checked(2).ok_or(TokenError::Malformed)?;
        let (nonce_bytes, sealed) = rest
            .split_at_checked(NONCE_LEN)
            .ok_or(TokenError::Malformed)?;
        let (&[version, kid], Ok(nonce_bytes)) = (
            <&[u8; 2]>::try_from(header).map_err(|_| TokenError::Malformed)?,
            <[u8; NONCE_LEN]>::try_from(nonce_bytes),
        ) else {
            return Err(TokenError::Malformed);
        };
        if version != VERSION {
            return Err(TokenError::Version);
        }
        let nonce = &Nonce::from(nonce_bytes);
        let aad = [header, domain].concat();
        self.keys
            .iter()
            .filter(|k| k.id == kid)
            .find_map(|k| {
                k.cipher
                    .decrypt(
                        nonce,
                        Payload {
                            msg: sealed,
                            aad: &aad,
                        },
                    )
                    .ok()
            })
            .ok_or(TokenError::Unauthentic)
    }
}

// Plaintext encoding: LEB128 varints and length-prefixed UTF-8 strings.
//
//   session id (16) | issued_at_ms (varint) | flags (1: bit0 principal, bit1 replica)
//   | [principal] | [replica] | target count (varint)
//   | per target: flags (bit0 upstream session, bit1 endpoint) | name | [upstream] | [endpoint]

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn encode_claims(c: &Claims, out: &mut Vec<u8>) {
    out.extend_from_slice(&c.session_id.0);
    put_varint(out, c.issued_at_ms);
    out.push(u8::from(c.principal.is_some()) | (u8::from(c.replica.is_some()) << 1));
    if let Some(p) = &c.principal {
        put_str(out, p);
    }
    if let Some(r) = &c.replica {
        put_str(out, r);
    }
    put_varint(out, c.targets.len() as u64);
    for t in &c.targets {
        out.push(u8::from(t.upstream_session.is_some()) | (u8::from(t.endpoint.is_some()) << 1));
        put_str(out, &t.name);
        if let Some(u) = &t.upstream_session {
            put_str(out, u);
        }
        if let Some(e) = &t.endpoint {
            put_str(out, e);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn byte(&mut self) -> Option<u8> {
        self.bytes(1).and_then(|b| b.first().copied())
    }
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.varint()?).ok()?;
        String::from_utf8(self.bytes(n)?.to_vec()).ok()
    }
    fn opt_string(&mut self, present: bool) -> Option<Option<String>> {
        if present {
            self.string().map(Some)
        } else {
            Some(None)
        }
    }
}

fn decode_claims(buf: &[u8]) -> Option<Claims> {
    let mut r = Reader(buf);
    let session_id = SessionId(r.bytes(16)?.try_into().ok()?);
    let issued_at_ms = r.varint()?;
    let flags = r.byte()?;
    if flags & !0b11 != 0 {
        return None;
    }
    let principal = r.opt_string(flags & 1 != 0)?;
    let replica = r.opt_string(flags & 2 != 0)?;
    let count = usize::try_from(r.varint()?).ok()?;
    // Each target takes at least two bytes, so a bogus count cannot make us over-allocate.
    if count > r.0.len() / 2 {
        return None;
    }
    let mut targets = Vec::with_capacity(count);
    for _ in 0..count {
        let tf = r.byte()?;
        if tf & !0b11 != 0 {
            return None;
        }
        let name = r.string()?;
        let upstream_session = r.opt_string(tf & 1 != 0)?;
        let endpoint = r.opt_string(tf & 2 != 0)?;
        targets.push(TargetEntry {
            name,
            upstream_session,
            endpoint,
        });
    }
    if !r.0.is_empty() {
        return None;
    }
    Some(Claims {
        session_id,
        issued_at_ms,
        principal,
        replica,
        targets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claims() -> Claims {
        Claims {
            session_id: SessionId([9; 16]),
            issued_at_ms: 1_764_000_000_123,
            principal: Some("alice".into()),
            replica: Some("10.0.0.7:8080".into()),
            targets: vec![
                TargetEntry {
                    name: "search".into(),
                    upstream_session: Some("3f2a6c1e-0d4b-4c4e-9a51-2b7f0e8d1c33".into()),
                    endpoint: Some("http://10.0.3.4:3001/mcp".into()),
                },
                TargetEntry::new("everything"),
            ],
        }
    }

    #[test]
    fn roundtrip() {
        let ring = Keyring::random();
        let token = ring.seal(&claims());
        assert_eq!(ring.open(&token).unwrap(), claims());
        // Header-safe: URL-safe base64 only.
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn tokens_are_compact() {
        let ring = Keyring::random();
        let c = claims();
        let token = ring.seal(&c);
        // 30 bytes of framing, 16 of id, the strings and a few bytes of lengths.
        let strings: usize = 5 + 13 + 6 + 36 + 24 + 10;
        let raw = token.len() * 3 / 4;
        assert!(raw <= 30 + 16 + 8 + strings + 12, "{} bytes", raw);
        let bare = Claims {
            principal: None,
            replica: None,
            targets: vec![],
            ..c
        };
        // An anonymous session with no targets: 22 chars of id becomes ~75 chars of token.
        assert!(ring.seal(&bare).len() < 80);
    }

    #[test]
    fn same_claims_different_tokens() {
        let ring = Keyring::random();
        assert_ne!(ring.seal(&claims()), ring.seal(&claims()));
    }

    #[test]
    fn rotation_old_key_still_opens() {
        let old = [1u8; 32];
        let new = [2u8; 32];
        let before = Keyring::new(&[old]).unwrap();
        let token = before.seal(&claims());
        let after = Keyring::new(&[new, old]).unwrap();
        assert_eq!(after.open(&token).unwrap(), claims());
        // New tokens use the new key: a ring with only the old key cannot open them.
        let fresh = after.seal(&claims());
        assert_eq!(before.open(&fresh), Err(TokenError::Unauthentic));
        // Once the old key is dropped, its tokens are dead.
        let only_new = Keyring::new(&[new]).unwrap();
        assert_eq!(only_new.open(&token), Err(TokenError::Unauthentic));
    }

    #[test]
    fn colliding_key_ids_still_open() {
        // Find two keys whose one-byte ids collide; the ring must try both.
        let a = [0u8; 32];
        let mut b = [0u8; 32];
        for i in 1u8..=255 {
            for j in 0u8..=255 {
                b[0] = i;
                b[1] = j;
                if key_id(&b) == key_id(&a) {
                    let ring = Keyring::new(&[a, b]).unwrap();
                    let by_b = Keyring::new(&[b]).unwrap().seal(&claims());
                    assert_eq!(ring.open(&by_b).unwrap(), claims());
                    return;
                }
            }
        }
        panic!("no collision found");
    }

    #[test]
    fn malformed_tokens() {
        let ring = Keyring::random();
        assert_eq!(ring.open(""), Err(TokenError::Malformed));
        assert_eq!(ring.open("not base64 !"), Err(TokenError::Malformed));
        assert_eq!(ring.open("AAAA"), Err(TokenError::Malformed));
        assert_eq!(
            ring.open(&"A".repeat(MAX_TOKEN_LEN + 4)),
            Err(TokenError::Malformed)
        );
        let mut raw = URL_SAFE_NO_PAD.decode(ring.seal(&claims())).unwrap();
        raw[0] = 2;
        assert_eq!(
            ring.open(&URL_SAFE_NO_PAD.encode(&raw)),
            Err(TokenError::Version)
        );
    }

    #[test]
    fn bit_flip_in_each_region_rejected() {
        let ring = Keyring::random();
        let raw = URL_SAFE_NO_PAD.decode(ring.seal(&claims())).unwrap();
        for byte in [1, 2, HEADER_LEN, raw.len() - 1] {
            let mut t = raw.clone();
            t[byte] ^= 0x10;
            assert!(
                ring.open(&URL_SAFE_NO_PAD.encode(&t)).is_err(),
                "byte {byte}"
            );
        }
    }

    #[test]
    fn decoder_rejects_trailing_and_truncated() {
        let mut buf = Vec::new();
        encode_claims(&claims(), &mut buf);
        assert_eq!(decode_claims(&buf).unwrap(), claims());
        let mut longer = buf.clone();
        longer.push(0);
        assert!(decode_claims(&longer).is_none());
        for n in 0..buf.len() {
            assert!(decode_claims(&buf[..n]).is_none(), "prefix {n}");
        }
    }

    #[test]
    fn session_id_text_roundtrip() {
        let id = SessionId::random();
        let s = id.to_string();
        assert_eq!(s.len(), 22);
        assert_eq!(s.parse::<SessionId>().unwrap(), id);
        assert!("short".parse::<SessionId>().is_err());
    }

    fn arb_claims() -> impl Strategy<Value = Claims> {
        let target = (
            "[a-z]{1,12}",
            proptest::option::of("[ -~]{0,40}"),
            proptest::option::of("[ -~]{0,40}"),
        )
            .prop_map(|(name, upstream_session, endpoint)| TargetEntry {
                name,
                upstream_session,
                endpoint,
            });
        (
            any::<[u8; 16]>(),
            any::<u64>(),
            proptest::option::of("\\PC{0,20}"),
            proptest::option::of("[ -~]{0,30}"),
            proptest::collection::vec(target, 0..5),
        )
            .prop_map(|(id, t, principal, replica, targets)| Claims {
                session_id: SessionId(id),
                issued_at_ms: t,
                principal,
                replica,
                targets,
            })
    }

    proptest! {
        #[test]
        fn any_claims_roundtrip(c in arb_claims()) {
            let ring = Keyring::new(&[[5u8; 32]]).unwrap();
            prop_assert_eq!(ring.open(&ring.seal(&c)).unwrap(), c);
        }

        #[test]
        fn any_single_bit_flip_is_rejected(c in arb_claims(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let ring = Keyring::new(&[[5u8; 32]]).unwrap();
            let mut raw = URL_SAFE_NO_PAD.decode(ring.seal(&c)).unwrap();
            let i = pos.index(raw.len());
            raw[i] ^= 1 << bit;
            prop_assert!(ring.open(&URL_SAFE_NO_PAD.encode(&raw)).is_err());
        }

        #[test]
        fn any_flip_of_the_text_token_is_rejected(c in arb_claims(), pos in any::<prop::sample::Index>(), bit in 0u8..7) {
            // Flipping a character of the base64 text: either not base64 any more, or a
            // different ciphertext. Never the same claims.
            let ring = Keyring::new(&[[5u8; 32]]).unwrap();
            let mut token = ring.seal(&c).into_bytes();
            let i = pos.index(token.len());
            token[i] ^= 1 << bit;
            if let Ok(text) = String::from_utf8(token) {
                // The last character carries 2-4 unused bits in unpadded base64; decoders that
                // ignore them could map a flip to the same bytes, which is not a forgery.
                if let Ok(opened) = ring.open(&text) {
                    prop_assert_eq!(opened, c);
                    prop_assert_eq!(i, text.len() - 1);
                }
            }
        }
    }
}
