//! Who a Flight SQL request acts for: request metadata in, a tenant out.
//!
//! **With `[[users]]` in the config** (the same users as the Postgres
//! wire protocol, [`crate::server::users`]):
//!
//! - **Handshake** (`authorization: Basic <user:password>`): the password is
//!   checked against the user's SCRAM verifier (or clear password); a wrong
//!   password or unknown user is `UNAUTHENTICATED`. The tenant is the
//!   `x-scope-orgid` metadata when it names one of the user's tenants
//!   (another tenant is `PERMISSION_DENIED`), else the user's first tenant.
//! - **Other calls** must carry the handshake's `authorization: Bearer
//!   <token>` and act for its tenant; without one they are `UNAUTHENTICATED`.
//!
//! **Without users**, any username and password are accepted; what matters
//! is the tenant:
//!
//! - **Handshake** (`authorization: Basic …`): the username is the tenant
//!   when it is a valid tenant id; otherwise (empty username, or one with
//!   characters tenant ids cannot have) the `x-scope-orgid` metadata names
//!   it, else `pgwire.default_tenant` (`anonymous`).
//! - **Other calls without a token** act for the `x-scope-orgid` tenant,
//!   else the default tenant (with `auth_enabled = true` the header is
//!   required), exactly as the write protocols resolve it.
//!
//! Either way the handshake answers with a random bearer token
//! (`authorization: Bearer …` metadata and the handshake payload) kept in
//! memory with its tenant for [`TOKEN_TTL`]; calls with an unknown or
//! expired token are `UNAUTHENTICATED`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use parking_lot::Mutex;
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::engine::Engine;
use crate::ingest::validate_tenant;
use crate::server::otlp::TENANT_METADATA;
use crate::server::push::resolve_tenant;
use crate::server::users::Users;

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
    users: Users,
    tokens: Mutex<HashMap<String, Token>>,
}

/// What an `authorization` value carries.
enum Credentials {
    None,
    Basic { username: String, password: String },
    Bearer(String),
}

impl Auth {
    pub fn new(engine: Arc<Engine>) -> Self {
        // Validated when the config was read; an invalid list admits no one.
        let users = Users::from_config(&engine.config().users).unwrap_or_else(|e| {
            tracing::error!("[[users]] is invalid, no Flight SQL user can log in: {e}");
            Users::default()
        });
        Auth {
            engine,
            users,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant of a handshake (see the module docs) and its new token.
    pub fn handshake(&self, metadata: &MetadataMap) -> Result<(String, String), Status> {
        let tenant = match credentials(metadata)? {
            Credentials::Bearer(token) => self.token_tenant(&token)?,
            Credentials::Basic { username, password } if !self.users.is_empty() => {
                self.user_tenant(metadata, &username, &password)?
            }
            _ if !self.users.is_empty() => {
                return Err(Status::unauthenticated(
                    "the Flight SQL handshake needs Basic authorization with a user and password",
                ));
            }
            Credentials::Basic { username, .. } if validate_tenant(&username).is_ok() => username,
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
            _ if !self.users.is_empty() => Err(Status::unauthenticated(
                "no bearer token: do the Flight SQL handshake with a user and password first",
            )),
            Credentials::Basic { username, .. } if validate_tenant(&username).is_ok() => {
                Ok(username)
            }
            _ => self.header_tenant(metadata),
        }
    }

    /// The tenant of a configured user after checking the password: the
    /// `x-scope-orgid` metadata when it names one of the user's tenants,
    /// else the user's first tenant.
    fn user_tenant(
        &self,
        metadata: &MetadataMap,
        username: &str,
        password: &str,
    ) -> Result<String, Status> {
        let user = self.users.authenticate(username, password).ok_or_else(|| {
            Status::unauthenticated(format!(
                "password authentication failed for user {username:?}"
            ))
        })?;
        let Some(asked) = metadata.get(TENANT_METADATA) else {
            return Ok(user.default_tenant().to_string());
        };
        let asked = asked
            .to_str()
            .map_err(|_| Status::invalid_argument("x-scope-orgid is not valid text"))?;
        if user.may_use(asked) {
            Ok(asked.to_string())
        } else {
            Err(Status::permission_denied(format!(
                "user {username:?} may not use tenant {asked:?}; its tenants are {}",
                user.tenants.join(", ")
            )))
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

/// Standard base64 with or without its `=` padding: Arrow's Go Flight
/// client (ADBC) sends Basic credentials unpadded.
const BASIC_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

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
        let decoded = BASIC_BASE64.decode(rest).map_err(|e| {
            Status::invalid_argument(format!("the Basic authorization is not base64: {e}"))
        })?;
        let text = String::from_utf8(decoded).map_err(|_| {
            Status::invalid_argument("the Basic authorization is not UTF-8 username:password")
        })?;
        let (username, password) = text.split_once(':').unwrap_or((text.as_str(), ""));
        return Ok(Credentials::Basic {
            username: username.to_string(),
            password: password.to_string(),
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
    use base64::prelude::{BASE64_STANDARD, BASE64_STANDARD_NO_PAD};
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
            Credentials::Basic { username, password } => {
                assert_eq!(username, "team-a");
                assert_eq!(password, "secret");
            }
            _ => panic!("not basic"),
        }
        // Unpadded, as Arrow's Go client sends it.
        let mut m = MetadataMap::new();
        let v = format!("Basic {}", BASE64_STANDARD_NO_PAD.encode("alice:wrong"));
        assert!(!v.ends_with('='));
        m.insert(AUTHORIZATION, MetadataValue::try_from(v).unwrap());
        match credentials(&m).unwrap() {
            Credentials::Basic { username, password } => {
                assert_eq!((username.as_str(), password.as_str()), ("alice", "wrong"));
            }
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
