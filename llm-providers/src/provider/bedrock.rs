//! AWS Bedrock Converse / ConverseStream, signed with SigV4 (or a Bedrock API key as bearer
//! token when no access key id is configured).

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};

use super::{Operation, Provider, base, post_json, secret_header};
use crate::config::{ProviderConfig, Secret};
use crate::translate::stream::UpstreamFormat;
use crate::{Error, Result};

/// AWS credentials.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Session token of temporary credentials.
    pub session_token: Option<Secret>,
}

/// Bedrock provider.
#[derive(Debug)]
pub struct Bedrock {
    base: String,
    host: String,
    region: String,
    model_path: String,
    creds: Option<Credentials>,
    bearer: Option<Secret>,
    headers: HeaderMap,
}

impl Bedrock {
    /// From config; credentials fall back to `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, region to `AWS_REGION` / `AWS_DEFAULT_REGION`.
    pub fn new(cfg: &ProviderConfig, headers: HeaderMap) -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let region = cfg
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let base = base(
            cfg,
            &format!("https://bedrock-runtime.{region}.amazonaws.com"),
        );
        let host = url::Url::parse(&base)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_string(),
                })
            })
            .unwrap_or_default();
        let key_id = cfg
            .access_key_id
            .clone()
            .or_else(|| env("AWS_ACCESS_KEY_ID"));
        let secret = cfg.resolve_api_key();
        let (creds, bearer) = match key_id {
            Some(access_key_id) => {
                let secret_access_key =
                    secret.or_else(|| env("AWS_SECRET_ACCESS_KEY").map(Secret::new));
                let creds = secret_access_key.map(|secret_access_key| Credentials {
                    access_key_id,
                    secret_access_key,
                    session_token: cfg
                        .session_token
                        .clone()
                        .or_else(|| env("AWS_SESSION_TOKEN").map(Secret::new)),
                });
                (creds, None)
            }
            // Without an access key id, `api_key` is a Bedrock API key (bearer token).
            None => (
                None,
                secret.or_else(|| env("AWS_BEARER_TOKEN_BEDROCK").map(Secret::new)),
            ),
        };
        Bedrock {
            base,
            host,
            region,
            model_path: uri_encode(&cfg.model, true),
            creds,
            bearer,
            headers,
        }
    }
}

impl Provider for Bedrock {
    fn native(&self) -> UpstreamFormat {
        UpstreamFormat::Bedrock
    }

    fn request(
        &self,
        client: &reqwest::Client,
        op: Operation,
        body: Bytes,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder> {
        if op != Operation::Chat {
            return Err(Error::BadRequest(
                "this model does not support this endpoint".into(),
            ));
        }
        let action = if stream {
            "converse-stream"
        } else {
            "converse"
        };
        let path = format!("/model/{}/{action}", self.model_path);
        let url = format!("{}{path}", self.base);
        let mut rb = post_json(client, &url, &self.headers, body.clone(), false);
        if stream {
            rb = rb.header(http::header::ACCEPT, "application/vnd.amazon.eventstream");
        }
        if let Some(c) = &self.creds {
            let signed = sign(
                c,
                &self.region,
                "bedrock",
                "POST",
                &self.host,
                &path,
                "",
                &body,
                std::time::SystemTime::now(),
            );
            rb = rb.header("x-amz-date", signed.amz_date).header(
                http::header::AUTHORIZATION,
                secret_header(&signed.authorization)?,
            );
            if let Some(t) = &c.session_token {
                rb = rb.header("x-amz-security-token", secret_header(t.expose())?);
            }
        } else if let Some(b) = &self.bearer {
            rb = rb.header(
                http::header::AUTHORIZATION,
                secret_header(&format!("Bearer {}", b.expose()))?,
            );
        }
        Ok(rb)
    }
}

/// The headers a SigV4 signature produces.
#[derive(Debug)]
pub struct Signed {
    /// `x-amz-date`.
    pub amz_date: String,
    /// `Authorization`.
    pub authorization: String,
}

/// Percent-encodes per SigV4 (unreserved characters kept; `/` kept unless `encode_slash`).
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // Invariant: HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    #[allow(clippy::expect_used)]
    let mut m = HmacSha256::new_from_slice(key).expect("hmac takes any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// Signs a request with AWS SigV4 over `host` and `x-amz-date` (plus `x-amz-security-token`
/// when present). `path` is the path as sent (already encoded); non-S3 services encode it once
/// more for the canonical request.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    c: &Credentials,
    region: &str,
    service: &str,
    method: &str,
    host: &str,
    path: &str,
    query: &str,
    body: &[u8],
    now: std::time::SystemTime,
) -> Signed {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let amz_date = amz_date(secs);
    let date = &amz_date[..8];
    let canonical_uri = uri_encode(path, false);
    let mut headers = vec![("host", host.to_string()), ("x-amz-date", amz_date.clone())];
    if let Some(t) = &c.session_token {
        headers.push(("x-amz-security-token", t.expose().to_string()));
    }
    let canonical_headers: String = headers
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
        .collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| *k)
        .collect::<Vec<_>>()
        .join(";");
    let canonical = format!(
        "{method}\n{canonical_uri}\n{query}\n{canonical_headers}\n{signed_headers}\n{}",
        hex::encode(Sha256::digest(body))
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k_date = hmac(
        format!("AWS4{}", c.secret_access_key.expose()).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex::encode(hmac(&k_signing, to_sign.as_bytes()));
    Signed {
        authorization: format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            c.access_key_id
        ),
        amz_date,
    }
}

/// `YYYYMMDDTHHMMSSZ` for Unix seconds.
fn amz_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_date_formats() {
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
    }

    /// The `get-vanilla` case of the AWS SigV4 test suite.
    #[test]
    fn sigv4_test_suite_get_vanilla() {
        let c = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: None,
        };
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        let s = sign(
            &c,
            "us-east-1",
            "service",
            "GET",
            "example.amazonaws.com",
            "/",
            "",
            b"",
            t,
        );
        assert_eq!(
            s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn model_ids_are_double_encoded_in_the_canonical_uri() {
        assert_eq!(
            uri_encode("anthropic.claude-3:0", true),
            "anthropic.claude-3%3A0"
        );
        assert_eq!(
            uri_encode("/model/anthropic.claude-3%3A0/converse", false),
            "/model/anthropic.claude-3%253A0/converse"
        );
    }
}
