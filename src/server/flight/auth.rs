//! Who a Flight SQL request acts for: request metadata in, a tenant out.
//!
//! Until users and passwords come to the config, any username and password
//! are accepted; what matters is the tenant:
//!
//! - **Handshake** (`authorization: Basic …`): the username is the tenant
//!   when it is a valid tenant id; otherwise (empty username, or one with
//!   characters tenant ids cannot have) the `x-scope-orgid` metadata names
//!   it, else `pgwire.default_tenant` (`anonymous`). The answer carries a
//!   random bearer token (`authorization: Bearer …` metadata and the
//!   handshake payload) kept in memory with that tenant for [`TOKEN_TTL`].
//! - **Other calls** with `authorization: Bearer <token>` act for the
//!   token's tenant; an unknown or expired token is `UNAUTHENTICATED`.
//! - **Other calls without a token** act for the `x-scope-orgid` tenant,
//!   else the default tenant (with `auth_enabled = true` the header is
//!   required), exactly as the write protocols resolve it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use parking_lot::Mutex;
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::engine::Engine;
use crate::ingest::validate_tenant;
use crate::server::otlp::TENANT_METADATA;
use crate::server::push::resolve_tenant;

/// How long a handshake's bearer token stays valid.
pub const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

const AUTHORIZATION: &str = "authorization";

struct Token {
    tenant: String,
    issued: Instant,
}

/// The tenant rule and the tokens handed out by handshakes.
pub struct Auth {
    engine: Arc<Engine>,
    tokens: Mutex<HashMap<String, Token>>,
}

/// What an `authorization` value carries.
enum Credentials {
    None,
    Basic { username: String },
    Bearer(String),
}

impl Auth {
    pub fn new(engine: Arc<Engine>) -> Self {
        Auth {
            engine,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant of a handshake (see the module docs) and its new token.
    pub fn handshake(&self, metadata: &MetadataMap) -> Result<(String, String), Status> {
        let tenant = match credentials(metadata)? {
            Credentials::Basic { username } if validate_tenant(&username).is_ok() => username,
            Credentials::Bearer(token) => self.token_tenant(&token)?,
            _ => self.header_tenant(metadata)?,
        };
        let token = new_token();
        let mut tokens = self.tokens.lock();
        tokens.retain(|_, t| t.issued.elapsed() < TOKEN_TTL);
        tokens.insert(
            token.clone(),
            Token {
                tenant: tenant.clone(),
                issued: Instant::now(),
            },
        );
        Ok((tenant, token))
    }

    /// The tenant a (non-handshake) call acts for.
    pub fn tenant(&self, metadata: &MetadataMap) -> Result<String, Status> {
        match credentials(metadata)? {
            Credentials::Bearer(token) => self.token_tenant(&token),
            Credentials::Basic { username } if validate_tenant(&username).is_ok() => Ok(username),
            _ => self.header_tenant(metadata),
        }
    }

    fn token_tenant(&self, token: &str) -> Result<String, Status> {
        match self.tokens.lock().get(token) {
            Some(t) if t.issued.elapsed() < TOKEN_TTL => Ok(t.tenant.clone()),
            _ => Err(Status::unauthenticated(
                "unknown or expired bearer token: do the Flight handshake again",
            )),
        }
    }

    fn header_tenant(&self, metadata: &MetadataMap) -> Result<String, Status> {
        let value = metadata.get(TENANT_METADATA).map(|v| v.as_bytes());
        resolve_tenant(&self.engine, value).map_err(|r| match r.status {
            401 => Status::unauthenticated(r.message),
            _ => Status::invalid_argument(r.message),
        })
    }
}

fn credentials(metadata: &MetadataMap) -> Result<Credentials, Status> {
    let Some(value) = metadata.get(AUTHORIZATION) else {
        return Ok(Credentials::None);
    };
    let value = value
        .to_str()
        .map_err(|_| Status::invalid_argument("the authorization metadata is not valid text"))?
        .trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Credentials::Bearer(rest.to_string()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = BASE64_STANDARD.decode(rest).map_err(|e| {
            Status::invalid_argument(format!("the Basic authorization is not base64: {e}"))
        })?;
        let text = String::from_utf8(decoded).map_err(|_| {
            Status::invalid_argument("the Basic authorization is not UTF-8 username:password")
        })?;
        let username = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
        return Ok(Credentials::Basic {
            username: username.to_string(),
        });
    }
    Err(Status::invalid_argument(format!(
        "authorization scheme {scheme:?} is not supported: use Basic (handshake) or Bearer"
    )))
}

/// 32 random bytes as hex.
fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    fn basic(user: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        let v = format!("Basic {}", BASE64_STANDARD.encode(format!("{user}:secret")));
        m.insert(AUTHORIZATION, MetadataValue::try_from(v).unwrap());
        m
    }

    #[test]
    fn basic_credentials_carry_the_username() {
        match credentials(&basic("team-a")).unwrap() {
            Credentials::Basic { username } => assert_eq!(username, "team-a"),
            _ => panic!("not basic"),
        }
        let mut m = MetadataMap::new();
        m.insert(AUTHORIZATION, MetadataValue::from_static("Digest abc"));
        let err = credentials(&m).err().unwrap();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("Digest"), "{}", err.message());
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
