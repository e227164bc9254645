//! Who a Postgres connection is: the startup packet and password messages
//! in, a session tenant (or a `FATAL` error) out.
//!
//! - A startup packet without `user` is refused (`28000`), as by Postgres.
//! - `tls_required`: a connection that did not negotiate TLS is refused
//!   (`28000`) before anything else.
//! - `trust`: anyone, acting for `pgwire.default_tenant`.
//! - `scram-sha-256`, `md5`, `password`: the `user` of the startup packet
//!   must be a `[[users]]` entry and prove its password; an unknown user and
//!   a wrong password get the same `28P01` (an unknown user's SCRAM exchange
//!   runs to its end with a made-up verifier, as in Postgres).
//! - The tenant: the startup `database` when it is one of the user's
//!   tenants; absent, the user's name, `postgres` or `o11ydb` → the user's
//!   first tenant; anything else is `3D000` with the user's tenants as hint.
//!
//! The tenant is kept in the connection's session extensions
//! ([`SessionTenant`]), out of reach of `SET` and SQL. Each accepted
//! connection is registered for CancelRequest: [`QueryCancel`] is what the
//! query handler listens to.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::auth::md5pass::hash_md5_password;
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::{
    ClientInfo, ConnectionHandle, ConnectionManager, METADATA_DATABASE, METADATA_USER,
    PgWireConnectionState, PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::sync::Mutex;

use crate::config::PgAuthMethod;
use crate::server::users::{ScramError, ScramExchange, User, Users, constant_time_eq};

const SCRAM_SHA_256: &str = "SCRAM-SHA-256";

/// The tenant a connection acts for, fixed at startup.
#[derive(Debug)]
pub struct SessionTenant(pub String);

/// Fires when a CancelRequest names this connection.
#[derive(Debug)]
pub struct QueryCancel(pub Arc<ConnectionHandle>);

/// What every connection's authentication shares.
pub struct PgAuth {
    pub method: PgAuthMethod,
    pub users: Users,
    pub default_tenant: String,
    pub tls_required: bool,
    pub connections: Arc<ConnectionManager>,
    pids: RandomPidSecretKeyGenerator,
}

impl PgAuth {
    pub fn new(config: &crate::config::Config, connections: Arc<ConnectionManager>) -> Self {
        // Validated when the config was read; an invalid list admits no one.
        let users = Users::from_config(&config.users).unwrap_or_else(|e| {
            tracing::error!("[[users]] is invalid, no Postgres user can log in: {e}");
            Users::default()
        });
        PgAuth {
            method: config.pg_auth_method(),
            users,
            default_tenant: config.pgwire.default_tenant.clone(),
            tls_required: config.pgwire.tls_required,
            connections,
            pids: RandomPidSecretKeyGenerator::default(),
        }
    }

    /// The tenant `user` gets for `database` (see the module docs).
    pub fn tenant_for(user: &User, database: Option<&str>) -> PgWireResult<String> {
        match database {
            Some(d) if user.may_use(d) => Ok(d.to_string()),
            None | Some("" | "postgres" | "o11ydb") => Ok(user.default_tenant().to_string()),
            Some(d) if d == user.name => Ok(user.default_tenant().to_string()),
            Some(d) => {
                let mut info = ErrorInfo::new(
                    "FATAL".into(),
                    "3D000".into(),
                    format!("database \"{d}\" does not exist"),
                );
                info.hint = Some(format!(
                    "user \"{}\" may connect to the databases (tenants) {}",
                    user.name,
                    user.tenants.join(", ")
                ));
                Err(PgWireError::UserError(Box::new(info)))
            }
        }
    }
}

fn fatal(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message.into(),
    )))
}

fn password_failed(user: &str) -> PgWireError {
    fatal(
        "28P01",
        format!("password authentication failed for user \"{user}\""),
    )
}

enum Step {
    Startup,
    /// Waiting for a PasswordMessage: clear text, or md5 with this salt.
    Password {
        md5_salt: Option<[u8; 4]>,
    },
    ScramClientFirst,
    ScramClientFinal(Box<ScramExchange>),
}

/// The startup handler of one connection.
pub struct PgStartup {
    auth: Arc<PgAuth>,
    step: Mutex<Step>,
}

impl PgStartup {
    pub fn new(auth: Arc<PgAuth>) -> Self {
        PgStartup {
            auth,
            step: Mutex::new(Step::Startup),
        }
    }

    /// Registers the connection for cancel requests and completes startup.
    async fn accept<C>(&self, client: &mut C, tenant: String) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        client.session_extensions().insert(SessionTenant(tenant));
        let (pid, secret_key) = self.auth.pids.generate(client);
        client.set_pid_and_secret_key(pid, secret_key.clone());
        let (handle, guard) = self.auth.connections.register(pid, secret_key);
        client.session_extensions().insert(QueryCancel(handle));
        client.session_extensions().insert(guard);
        finish_authentication(client, &DefaultServerParameterProvider::default()).await
    }

    fn user_name<C: ClientInfo>(client: &C) -> String {
        client
            .metadata()
            .get(METADATA_USER)
            .cloned()
            .unwrap_or_default()
    }

    fn tenant_of<C: ClientInfo>(&self, client: &C, user: &User) -> PgWireResult<String> {
        PgAuth::tenant_for(
            user,
            client.metadata().get(METADATA_DATABASE).map(String::as_str),
        )
    }
}

#[async_trait]
impl StartupHandler for PgStartup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut step = self.step.lock().await;
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                if startup
                    .parameters
                    .get("user")
                    .is_none_or(|user| user.is_empty())
                {
                    return Err(fatal(
                        "28000",
                        "no PostgreSQL user name specified in startup packet",
                    ));
                }
                save_startup_parameters_to_metadata(client, startup);
                if self.auth.tls_required && !client.is_secure() {
                    return Err(fatal(
                        "28000",
                        "connection without TLS refused: pgwire.tls_required is on; \
                         connect with sslmode=require",
                    ));
                }
                let request = match self.auth.method {
                    PgAuthMethod::Trust => {
                        return self.accept(client, self.auth.default_tenant.clone()).await;
                    }
                    PgAuthMethod::Password => {
                        *step = Step::Password { md5_salt: None };
                        Authentication::CleartextPassword
                    }
                    PgAuthMethod::Md5 => {
                        let salt: [u8; 4] = rand::random();
                        *step = Step::Password {
                            md5_salt: Some(salt),
                        };
                        Authentication::MD5Password(salt.to_vec())
                    }
                    PgAuthMethod::ScramSha256 => {
                        *step = Step::ScramClientFirst;
                        Authentication::SASL(vec![SCRAM_SHA_256.to_string()])
                    }
                };
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(request))
                    .await?;
                Ok(())
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                let name = Self::user_name(client);
                match std::mem::replace(&mut *step, Step::Startup) {
                    Step::Password { md5_salt } => {
                        let given = message.into_password()?.password;
                        let user = self.auth.users.get(&name).filter(|u| match md5_salt {
                            None => u.password_matches(&given),
                            Some(salt) => u.clear_password.as_deref().is_some_and(|p| {
                                let expected = hash_md5_password(&name, p, &salt);
                                constant_time_eq(expected.as_bytes(), given.as_bytes())
                            }),
                        });
                        let Some(user) = user else {
                            return Err(password_failed(&name));
                        };
                        let tenant = self.tenant_of(client, user)?;
                        self.accept(client, tenant).await
                    }
                    Step::ScramClientFirst => {
                        let first = message.into_sasl_initial_response()?;
                        if first.auth_method != SCRAM_SHA_256 {
                            return Err(fatal(
                                "28000",
                                format!(
                                    "SASL mechanism {:?} is not offered; use {SCRAM_SHA_256}",
                                    first.auth_method
                                ),
                            ));
                        }
                        let data = first.data.unwrap_or_default();
                        let text = std::str::from_utf8(&data)
                            .map_err(|_| fatal("08P01", "SCRAM message is not UTF-8"))?;
                        let verifier = self.auth.users.get(&name).map(|u| &u.verifier);
                        let (exchange, server_first) = ScramExchange::start(verifier, text)
                            .map_err(|e| scram_error(e, &name))?;
                        *step = Step::ScramClientFinal(Box::new(exchange));
                        client
                            .send(PgWireBackendMessage::Authentication(
                                Authentication::SASLContinue(server_first.into()),
                            ))
                            .await?;
                        Ok(())
                    }
                    Step::ScramClientFinal(exchange) => {
                        let response = message.into_sasl_response()?;
                        let text = std::str::from_utf8(&response.data)
                            .map_err(|_| fatal("08P01", "SCRAM message is not UTF-8"))?;
                        let server_final =
                            exchange.finish(text).map_err(|e| scram_error(e, &name))?;
                        let user = self
                            .auth
                            .users
                            .get(&name)
                            .ok_or_else(|| password_failed(&name))?;
                        client
                            .send(PgWireBackendMessage::Authentication(
                                Authentication::SASLFinal(server_final.into()),
                            ))
                            .await?;
                        let tenant = self.tenant_of(client, user)?;
                        self.accept(client, tenant).await
                    }
                    Step::Startup => Err(fatal(
                        "08P01",
                        "unexpected password message before the startup packet",
                    )),
                }
            }
            _ => Ok(()),
        }
    }
}

fn scram_error(e: ScramError, user: &str) -> PgWireError {
    match e {
        ScramError::WrongPassword => password_failed(user),
        ScramError::Protocol(m) => fatal("08P01", m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::users::UserConfig;

    fn alice() -> User {
        let users = Users::from_config(&[UserConfig {
            name: "alice".into(),
            password: Some("secret".into()),
            password_hash: None,
            tenants: vec!["team-a".into(), "team-b".into()],
        }])
        .unwrap();
        users.get("alice").unwrap().clone()
    }

    #[test]
    fn the_database_names_the_tenant() {
        let u = alice();
        for (database, tenant) in [
            (None, "team-a"),
            (Some("alice"), "team-a"),
            (Some("postgres"), "team-a"),
            (Some("o11ydb"), "team-a"),
            (Some("team-b"), "team-b"),
        ] {
            assert_eq!(PgAuth::tenant_for(&u, database).unwrap(), tenant);
        }
        let PgWireError::UserError(info) = PgAuth::tenant_for(&u, Some("team-c")).unwrap_err()
        else {
            panic!("not a user error");
        };
        assert_eq!(info.code, "3D000");
        assert_eq!(info.severity, "FATAL");
        assert_eq!(info.message, "database \"team-c\" does not exist");
        assert!(info.hint.unwrap().contains("team-a, team-b"));
    }
}
