//! One Postgres connection's bytes: socket → frame headers checked →
//! `pgwire`'s decoder → o11ydb's handlers, and the `FATAL` error a client
//! gets when what it sent cannot be a Postgres message.
//!
//! `pgwire::tokio::process_socket` reads frames with `tokio_util`'s
//! `Framed`, which keeps reading until a whole message is buffered (a
//! `Query` may claim up to 1 GiB) and ends the connection without a word
//! when a frame does not decode. This loop reads the same socket itself so
//! that, before a message body is buffered, its header is checked:
//!
//! - startup packet: length 8 ..= 10000 bytes (as Postgres'
//!   `MAX_STARTUP_PACKET_LENGTH`), else `08P01` "invalid length of startup
//!   packet"; protocol 3.x (or a CancelRequest), else `0A000`
//!   "unsupported frontend protocol";
//! - later messages: a known frontend type byte, else `08P01` "invalid
//!   frontend message type"; a length of at least 4, else `08P01`; at most
//!   `pgwire.max_message_bytes`, else `54000` naming the limit — the buffer
//!   grows with the bytes that arrive, never to the claimed length;
//! - the connection closing (or half-closing) inside a message: `08P01`
//!   "incomplete message" to whoever still listens.
//!
//! Each refusal is a `FATAL` `ErrorResponse`, after which the connection is
//! closed (lingering briefly so the client reads it before the close).
//! Decoded messages go to `pgwire::tokio::server::process_message` exactly
//! as in `pgwire`'s own loop; startup must complete within
//! [`STARTUP_TIMEOUT`], as Postgres' `authentication_timeout`.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures::SinkExt;
use pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState, PgWireServerHandlers};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{MaybeTls, PgWireMessageServerCodec, negotiate_tls};
use pgwire::tokio::server::{process_error, process_message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_util::codec::{Decoder, Framed};

/// How long a client has to finish startup and authentication.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest startup packet (Postgres' `MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_PACKET: usize = 10_000;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;
/// After a refusal: how long and how much of what the client still sends is
/// read (and dropped) before closing, so the close does not reset the
/// connection before the client has read the error.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 16 << 20;

const CANCEL_REQUEST_CODE: u32 = 80877102;
const SSL_REQUEST_CODE: u32 = 80877103;
const GSSENC_REQUEST_CODE: u32 = 80877104;

/// Frontend message type bytes `pgwire` decodes after startup.
const MESSAGE_TYPES: &[u8] = b"pQPBCDEHSXdfc";

type Socket<S> = Framed<MaybeTls, PgWireMessageServerCodec<S>>;

/// Serves one TCP connection (TLS negotiated when `tls` is set) until the
/// client terminates, closes, or sends something that is not a message.
pub async fn process_socket<H: PgWireServerHandlers>(
    tcp: TcpStream,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    handlers: H,
    max_message_bytes: usize,
) -> std::io::Result<()> {
    let startup_deadline = Instant::now() + STARTUP_TIMEOUT;
    let Ok(negotiated) = timeout_at(startup_deadline, negotiate_tls(tcp, tls)).await else {
        return Ok(());
    };
    // `None`: direct TLS without a configured certificate.
    let Some(mut socket) = negotiated? else {
        return Ok(());
    };
    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let errors = handlers.error_handler();
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let next = read_message(&mut socket, max_message_bytes);
        let read = if starting {
            match timeout_at(startup_deadline, next).await {
                Ok(read) => read,
                Err(_) => Err(Refusal::fatal(
                    "08P01",
                    format!(
                        "startup did not complete within {}s",
                        STARTUP_TIMEOUT.as_secs()
                    ),
                )),
            }
        } else {
            next.await
        };
        let message = match read {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(Refusal::Gone) => break,
            Err(Refusal::Fatal(info)) => {
                tracing::debug!(peer = %socket.socket_addr(), "postgres connection refused: {}", info.message);
                refuse(&mut socket, *info).await;
                break;
            }
        };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let extended_protocol = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        if let Err(mut e) = process_message(
            message,
            &mut socket,
            startup.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        )
        .await
        {
            errors.on_error(&socket, &mut e);
            process_error(&mut socket, e, extended_protocol).await?;
        }
    }
    Ok(())
}

/// Why reading stopped short of a message.
#[derive(Debug)]
enum Refusal {
    /// The connection broke: nobody to tell.
    Gone,
    /// Tell the client, then close.
    Fatal(Box<ErrorInfo>),
}

impl Refusal {
    fn fatal(code: &str, message: impl Into<String>) -> Self {
        Refusal::Fatal(Box::new(ErrorInfo::new(
            "FATAL".into(),
            code.into(),
            message.into(),
        )))
    }
}

/// The next whole message, `None` when the client closed between messages.
async fn read_message<S>(
    socket: &mut Socket<S>,
    max_message_bytes: usize,
) -> Result<Option<PgWireFrontendMessage>, Refusal> {
    loop {
        let startup = matches!(socket.state(), PgWireConnectionState::AwaitingStartup);
        check_header(startup, socket.read_buffer(), max_message_bytes)?;
        let mut buffer = std::mem::take(socket.read_buffer_mut());
        let decoded = socket.codec_mut().decode(&mut buffer);
        *socket.read_buffer_mut() = buffer;
        match decoded {
            Ok(Some(message)) => return Ok(Some(message)),
            Ok(None) => {}
            Err(e) => return Err(decode_refusal(e)),
        }
        let mut buffer = std::mem::take(socket.read_buffer_mut());
        buffer.reserve(READ_CHUNK);
        let read = socket.get_mut().read_buf(&mut buffer).await;
        let pending = buffer.len();
        *socket.read_buffer_mut() = buffer;
        match read {
            Ok(0) if pending == 0 => return Ok(None),
            Ok(0) if startup => {
                return Err(Refusal::fatal("08P01", "incomplete startup packet"));
            }
            Ok(0) => {
                return Err(Refusal::fatal(
                    "08P01",
                    format!(
                        "incomplete message from client: the connection was closed \
                         {pending} bytes into a message"
                    ),
                ));
            }
            Ok(_) => {}
            Err(_) => return Err(Refusal::Gone),
        }
    }
}

/// Refuses a frame whose header cannot start a message (see the module docs).
fn check_header(startup: bool, buffer: &BytesMut, max_message_bytes: usize) -> Result<(), Refusal> {
    if startup {
        if buffer.len() < 4 {
            return Ok(());
        }
        let length = (&buffer[..4]).get_i32();
        if length < 8 || length as usize > MAX_STARTUP_PACKET {
            return Err(Refusal::fatal(
                "08P01",
                format!(
                    "invalid length of startup packet: {length} bytes (a startup packet has \
                     8 to {MAX_STARTUP_PACKET})"
                ),
            ));
        }
        if buffer.len() < 8 {
            return Ok(());
        }
        let code = (&buffer[4..8]).get_u32();
        let (major, minor) = (code >> 16, code & 0xffff);
        let negotiation = [CANCEL_REQUEST_CODE, SSL_REQUEST_CODE, GSSENC_REQUEST_CODE];
        if major != 3 && !negotiation.contains(&code) {
            return Err(Refusal::fatal(
                "0A000",
                format!(
                    "unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.2"
                ),
            ));
        }
        if code == SSL_REQUEST_CODE || code == GSSENC_REQUEST_CODE {
            return Err(Refusal::fatal(
                "08P01",
                "SSL or GSS encryption requested again after negotiation",
            ));
        }
        return Ok(());
    }
    let Some(&kind) = buffer.first() else {
        return Ok(());
    };
    if !MESSAGE_TYPES.contains(&kind) {
        return Err(Refusal::fatal("08P01", invalid_type_message(kind)));
    }
    if buffer.len() < 5 {
        return Ok(());
    }
    let length = (&buffer[1..5]).get_i32();
    if length < 4 {
        return Err(Refusal::fatal(
            "08P01",
            format!(
                "invalid message length {length} for message type {}: a length counts its own 4 bytes",
                type_name(kind)
            ),
        ));
    }
    if length as usize > max_message_bytes {
        return Err(too_large(kind, length as usize, max_message_bytes));
    }
    Ok(())
}

fn too_large(kind: u8, length: usize, limit: usize) -> Refusal {
    let mut info = ErrorInfo::new(
        "FATAL".into(),
        "54000".into(),
        format!(
            "message of type {} is {length} bytes, over the limit of {limit} bytes \
             (pgwire.max_message_bytes)",
            type_name(kind)
        ),
    );
    info.hint = Some(
        "send smaller statements or parameters, or raise pgwire.max_message_bytes".to_string(),
    );
    Refusal::Fatal(Box::new(info))
}

fn type_name(kind: u8) -> String {
    if kind.is_ascii_graphic() {
        format!("'{}'", kind as char)
    } else {
        format!("{kind}")
    }
}

fn invalid_type_message(kind: u8) -> String {
    format!("invalid frontend message type {kind} ({})", type_name(kind))
}

/// The refusal for an error of `pgwire`'s decoder (past the header checks:
/// a message whose contents do not parse).
fn decode_refusal(error: PgWireError) -> Refusal {
    match error {
        PgWireError::IoError(_) => Refusal::Gone,
        PgWireError::InvalidMessageType(kind) => {
            Refusal::fatal("08P01", invalid_type_message(kind))
        }
        PgWireError::MessageTooLarge(limit, length) => Refusal::fatal(
            "54000",
            format!("message of {length} bytes is over the limit of {limit} bytes for its type"),
        ),
        other => Refusal::fatal("08P01", format!("invalid message: {other}")),
    }
}

/// Sends `info`, then closes: the write side first, then what the client
/// still sends is read and dropped for a moment (bounded), so the client
/// sees the error rather than a reset connection.
async fn refuse<S>(socket: &mut Socket<S>, info: ErrorInfo) {
    let sent = async {
        socket
            .send(PgWireBackendMessage::ErrorResponse(info.into()))
            .await?;
        socket.get_mut().shutdown().await
    };
    if tokio::time::timeout(LINGER, sent).await.is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut drained = 0usize;
    let mut sink = vec![0u8; READ_CHUNK];
    while drained < LINGER_BYTES {
        match timeout_at(deadline, socket.get_mut().read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => break,
        }
    }
}
