//! Users of the Postgres wire and Flight SQL front ends: `[[users]]` in the
//! config → validated [`Users`] (name → password verifier, tenants) → the
//! checks both front ends make.
//!
//! A password is kept as Postgres keeps it in `pg_authid`: a SCRAM-SHA-256
//! verifier, `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`
//! (base64; see RFC 5802 and RFC 7677). A user given a clear `password` gets
//! a verifier computed at load, and keeps the clear text only because `md5`
//! and a few clients need it. [`hash_password`] makes the verifier that
//! `o11ydb hash-password` prints.
//!
//! The SCRAM exchange itself ([`ScramExchange`]) is the server half of
//! SCRAM-SHA-256 without channel binding, as Postgres offers it when it
//! does not advertise `SCRAM-SHA-256-PLUS`.

use std::collections::HashMap;
use std::num::NonZeroU32;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use ring::{digest, hmac, pbkdf2};
use serde::Deserialize;

/// PBKDF2 rounds of new verifiers (Postgres' `scram_iterations` default).
pub const SCRAM_ITERATIONS: u32 = 4096;

/// One `[[users]]` entry as written in the config.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// The password in clear (exactly one of `password`, `password_hash`).
    #[serde(default)]
    pub password: Option<String>,
    /// A SCRAM-SHA-256 verifier in Postgres' `pg_authid` format.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// Tenants the user may act for; the first is the default.
    #[serde(default)]
    pub tenants: Vec<String>,
}

/// What a SCRAM-SHA-256 server keeps of a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

/// A validated user.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub tenants: Vec<String>,
    /// The clear password, when the config has it (needed by `md5`).
    pub clear_password: Option<String>,
    pub verifier: ScramVerifier,
}

impl User {
    /// Whether `password` is this user's password.
    pub fn password_matches(&self, password: &str) -> bool {
        if let Some(clear) = &self.clear_password {
            return constant_time_eq(clear.as_bytes(), password.as_bytes());
        }
        let v = &self.verifier;
        let salted = salted_password(password, &v.salt, v.iterations);
        let stored_key = sha256(&hmac_sha256(&salted, b"Client Key"));
        constant_time_eq(&stored_key, &v.stored_key)
    }

    /// The user's default tenant.
    pub fn default_tenant(&self) -> &str {
        &self.tenants[0]
    }

    pub fn may_use(&self, tenant: &str) -> bool {
        self.tenants.iter().any(|t| t == tenant)
    }
}

/// The configured users by name.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_name: HashMap<String, User>,
}

impl Users {
    /// Validates `[[users]]`; errors name the user and what is wrong.
    pub fn from_config(configs: &[UserConfig]) -> Result<Users, String> {
        let mut by_name = HashMap::new();
        for (i, c) in configs.iter().enumerate() {
            let who = if c.name.is_empty() {
                format!("users[{i}]")
            } else {
                format!("user {:?}", c.name)
            };
            if c.name.is_empty() {
                return Err(format!("{who}: name is empty"));
            }
            if c.tenants.is_empty() {
                return Err(format!(
                    "{who}: tenants is empty; list the tenants the user may query (the first is the default)"
                ));
            }
            for t in &c.tenants {
                crate::ingest::validate_tenant(t)
                    .map_err(|e| format!("{who}: tenant {t:?} is not a valid tenant id: {e}"))?;
            }
            let verifier = match (&c.password, &c.password_hash) {
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "{who}: set either password or password_hash, not both"
                    ));
                }
                (None, None) => {
                    return Err(format!(
                        "{who}: no password: set password, or password_hash (from `o11ydb hash-password`)"
                    ));
                }
                (Some(p), None) => {
                    if p.is_empty() {
                        return Err(format!("{who}: password is empty"));
                    }
                    new_verifier(p, SCRAM_ITERATIONS)
                }
                (None, Some(h)) => {
                    parse_verifier(h).map_err(|e| format!("{who}: password_hash: {e}"))?
                }
            };
            let user = User {
                name: c.name.clone(),
                tenants: c.tenants.clone(),
                clear_password: c.password.clone(),
                verifier,
            };
            if by_name.insert(c.name.clone(), user).is_some() {
                return Err(format!("{who} is listed twice"));
            }
        }
        Ok(Users { by_name })
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.by_name.get(name)
    }

    /// Names of users that have only a password hash.
    pub fn without_clear_password(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .by_name
            .values()
            .filter(|u| u.clear_password.is_none())
            .map(|u| u.name.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// The user named `name` if `password` is theirs.
    pub fn authenticate(&self, name: &str, password: &str) -> Option<&User> {
        self.get(name).filter(|u| u.password_matches(password))
    }
}

/// A SCRAM-SHA-256 verifier of `password` with a random salt, as
/// `o11ydb hash-password` prints it.
pub fn hash_password(password: &str) -> String {
    format_verifier(&new_verifier(password, SCRAM_ITERATIONS))
}

pub fn format_verifier(v: &ScramVerifier) -> String {
    format!(
        "SCRAM-SHA-256${}:{}${}:{}",
        v.iterations,
        BASE64_STANDARD.encode(&v.salt),
        BASE64_STANDARD.encode(&v.stored_key),
        BASE64_STANDARD.encode(&v.server_key)
    )
}

fn new_verifier(password: &str, iterations: u32) -> ScramVerifier {
    let salt: [u8; 16] = rand::random();
    verifier_with_salt(password, &salt, iterations)
}

fn verifier_with_salt(password: &str, salt: &[u8], iterations: u32) -> ScramVerifier {
    let salted = salted_password(password, salt, iterations);
    ScramVerifier {
        iterations,
        salt: salt.to_vec(),
        stored_key: sha256(&hmac_sha256(&salted, b"Client Key")),
        server_key: hmac_sha256(&salted, b"Server Key"),
    }
}

/// Parses `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
pub fn parse_verifier(text: &str) -> Result<ScramVerifier, String> {
    const FORMAT: &str =
        "expected SCRAM-SHA-256$<iterations>:<salt base64>$<StoredKey base64>:<ServerKey base64>";
    let rest = text
        .strip_prefix("SCRAM-SHA-256$")
        .ok_or_else(|| format!("not a SCRAM-SHA-256 verifier ({FORMAT})"))?;
    let (params, keys) = rest
        .split_once('$')
        .ok_or_else(|| format!("no '$' before the keys ({FORMAT})"))?;
    let (iterations, salt) = params
        .split_once(':')
        .ok_or_else(|| format!("no ':' between iterations and salt ({FORMAT})"))?;
    let (stored_key, server_key) = keys
        .split_once(':')
        .ok_or_else(|| format!("no ':' between StoredKey and ServerKey ({FORMAT})"))?;
    let iterations: u32 = iterations
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("iterations {iterations:?} is not a positive number"))?;
    let decode = |what: &str, s: &str| {
        BASE64_STANDARD
            .decode(s)
            .map_err(|e| format!("{what} is not base64: {e}"))
    };
    let salt = decode("salt", salt)?;
    if salt.is_empty() {
        return Err("salt is empty".into());
    }
    let stored_key = decode("StoredKey", stored_key)?;
    let server_key = decode("ServerKey", server_key)?;
    for (what, key) in [("StoredKey", &stored_key), ("ServerKey", &server_key)] {
        if key.len() != 32 {
            return Err(format!(
                "{what} has {} bytes; SHA-256 keys have 32",
                key.len()
            ));
        }
    }
    Ok(ScramVerifier {
        iterations,
        salt,
        stored_key,
        server_key,
    })
}

/// `Hi(Normalize(password), salt, i)`; a password SASLprep rejects is used
/// as is, as Postgres does.
fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let prepared = stringprep::saslprep(password)
        .map(|p| p.into_owned())
        .unwrap_or_else(|_| password.to_string());
    let mut out = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(iterations.max(1)).expect("at least one iteration"),
        salt,
        prepared.as_bytes(),
        &mut out,
    );
    out
}

/// Whether `a == b`, in a time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message)
        .as_ref()
        .to_vec()
}

fn sha256(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, data).as_ref().to_vec()
}

/// Why a SCRAM exchange failed.
#[derive(Debug, PartialEq, Eq)]
pub enum ScramError {
    /// The client's messages do not follow RFC 5802.
    Protocol(String),
    /// The proof does not match: wrong password (or unknown user).
    WrongPassword,
}

/// The server side of one SCRAM-SHA-256 exchange.
#[derive(Debug)]
pub struct ScramExchange {
    verifier: ScramVerifier,
    /// False for an unknown user: the exchange runs with a made-up
    /// verifier and fails at the end, so a client cannot tell which
    /// user names exist.
    real: bool,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ScramExchange {
    /// Answers the client-first message: returns the exchange and the
    /// server-first message.
    pub fn start(
        verifier: Option<&ScramVerifier>,
        client_first: &str,
    ) -> Result<(ScramExchange, String), ScramError> {
        let bad = |m: &str| ScramError::Protocol(format!("malformed SCRAM client-first: {m}"));
        // gs2-header: "n,," or "y,," (channel binding not used); an
        // authzid ("n,a=...,") is not supported, as in Postgres.
        let (cbind, rest) = client_first
            .split_once(',')
            .ok_or_else(|| bad("no GS2 header"))?;
        match cbind {
            "n" | "y" => {}
            c if c.starts_with("p=") => {
                return Err(ScramError::Protocol(
                    "channel binding is not offered: use SCRAM-SHA-256".into(),
                ));
            }
            _ => return Err(bad("unexpected channel binding flag")),
        }
        let (authzid, bare) = rest.split_once(',').ok_or_else(|| bad("no GS2 header"))?;
        if !authzid.is_empty() {
            return Err(ScramError::Protocol(
                "an authorization identity is not supported".into(),
            ));
        }
        let gs2_header = format!("{cbind},{authzid},");
        let client_nonce = bare
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("no nonce"))?;
        let server_part: [u8; 18] = rand::random();
        let nonce = format!("{client_nonce}{}", BASE64_STANDARD.encode(server_part));
        let (verifier, real) = match verifier {
            Some(v) => (v.clone(), true),
            None => {
                let salt: [u8; 16] = rand::random();
                let keys: [u8; 32] = rand::random();
                (
                    ScramVerifier {
                        iterations: SCRAM_ITERATIONS,
                        salt: salt.to_vec(),
                        stored_key: keys.to_vec(),
                        server_key: keys.to_vec(),
                    },
                    false,
                )
            }
        };
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64_STANDARD.encode(&verifier.salt),
            verifier.iterations
        );
        Ok((
            ScramExchange {
                verifier,
                real,
                gs2_header,
                client_first_bare: bare.to_string(),
                server_first: server_first.clone(),
                nonce,
            },
            server_first,
        ))
    }

    /// Checks the client-final message; returns the server-final message.
    pub fn finish(&self, client_final: &str) -> Result<String, ScramError> {
        let bad = |m: &str| ScramError::Protocol(format!("malformed SCRAM client-final: {m}"));
        let (without_proof, proof) = client_final
            .rsplit_once(",p=")
            .ok_or_else(|| bad("no proof"))?;
        let mut channel_binding = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            if let Some(c) = attr.strip_prefix("c=") {
                channel_binding = Some(c);
            } else if let Some(r) = attr.strip_prefix("r=") {
                nonce = Some(r);
            }
        }
        let expected_binding = BASE64_STANDARD.encode(self.gs2_header.as_bytes());
        if channel_binding != Some(expected_binding.as_str()) {
            return Err(bad("channel binding does not match the GS2 header"));
        }
        if nonce != Some(self.nonce.as_str()) {
            return Err(bad("nonce does not match"));
        }
        let proof = BASE64_STANDARD
            .decode(proof)
            .map_err(|_| bad("proof is not base64"))?;
        if proof.len() != 32 {
            return Err(bad("proof has the wrong length"));
        }
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let client_signature = hmac_sha256(&self.verifier.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let matches = constant_time_eq(&sha256(&client_key), &self.verifier.stored_key);
        if !(matches && self.real) {
            return Err(ScramError::WrongPassword);
        }
        let server_signature = hmac_sha256(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", BASE64_STANDARD.encode(server_signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(
        name: &str,
        password: Option<&str>,
        hash: Option<&str>,
        tenants: &[&str],
    ) -> UserConfig {
        UserConfig {
            name: name.into(),
            password: password.map(Into::into),
            password_hash: hash.map(Into::into),
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
        }
    }

    /// The RFC 7677 example: user "user", password "pencil".
    #[test]
    fn rfc7677_exchange() {
        let salt = BASE64_STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = verifier_with_salt("pencil", &salt, 4096);
        let client_first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
        let (mut ex, _) = ScramExchange::start(Some(&v), client_first).unwrap();
        // Replace the random server nonce with the RFC's.
        ex.nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into();
        ex.server_first = format!("r={},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", ex.nonce);
        let client_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            ex.finish(client_final).unwrap(),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let wrong = client_final.replace("p=dHz", "p=eHz");
        assert_eq!(ex.finish(&wrong), Err(ScramError::WrongPassword));
    }

    #[test]
    fn hashed_passwords_round_trip() {
        let hash = hash_password("secret");
        let v = parse_verifier(&hash).unwrap();
        assert_eq!(v.iterations, SCRAM_ITERATIONS);
        assert_eq!(format_verifier(&v), hash);
        let users = Users::from_config(&[user("bob", None, Some(&hash), &["team-a"])]).unwrap();
        assert!(users.authenticate("bob", "secret").is_some());
        assert!(users.authenticate("bob", "Secret").is_none());
        assert!(users.authenticate("nobody", "secret").is_none());
        assert_eq!(users.without_clear_password(), vec!["bob"]);
    }

    #[test]
    fn invalid_users_are_refused_naming_the_user() {
        let cases = [
            (
                user("a", Some("x"), None, &[]),
                "user \"a\": tenants is empty",
            ),
            (
                user("b", Some("x"), None, &["bad|tenant"]),
                "user \"b\": tenant \"bad|tenant\"",
            ),
            (
                user("c", Some("x"), Some(&hash_password("x")), &["t"]),
                "user \"c\": set either password or password_hash",
            ),
            (user("d", None, None, &["t"]), "user \"d\": no password"),
            (
                user("e", None, Some("md5abc"), &["t"]),
                "user \"e\": password_hash: not a SCRAM-SHA-256 verifier",
            ),
            (
                user(
                    "f",
                    None,
                    Some("SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA"),
                    &["t"],
                ),
                "user \"f\": password_hash: StoredKey has 3 bytes",
            ),
            (user("", Some("x"), None, &["t"]), "users[0]: name is empty"),
        ];
        for (config, expected) in cases {
            let err = Users::from_config(&[config]).unwrap_err();
            assert!(err.starts_with(expected), "{err}");
        }
        let twice = [
            user("g", Some("x"), None, &["t"]),
            user("g", Some("y"), None, &["t"]),
        ];
        assert!(
            Users::from_config(&twice)
                .unwrap_err()
                .contains("listed twice")
        );
    }

    #[test]
    fn unknown_users_fail_only_at_the_end() {
        let (ex, server_first) = ScramExchange::start(None, "n,,n=,r=abc").unwrap();
        assert!(server_first.starts_with("r=abc"), "{server_first}");
        let final_msg = format!(
            "c=biws,r={},p={}",
            ex.nonce,
            BASE64_STANDARD.encode([0u8; 32])
        );
        assert_eq!(ex.finish(&final_msg), Err(ScramError::WrongPassword));
        assert!(matches!(
            ScramExchange::start(None, "p=tls-server-end-point,,n=,r=abc"),
            Err(ScramError::Protocol(_))
        ));
    }
}
