//! The control protocol: JSON-RPC 2.0, one JSON object per line, over a Unix
//! socket whose peer credentials decide access. The supervisor serves it on
//! `<state>/run/control.sock`; services that answer their own methods serve
//! it on `<state>/run/<service>.sock` and the supervisor forwards to them.
//!
//! This crate knows framing, messages and access, and the shapes of the
//! supervisor's methods, one module per namespace: their names, their
//! params (the structs the supervisor parses, the clients build: `ctl`,
//! the web, the services) and, where simple, their results. What the
//! methods do is the supervisor's (`supervisor/src/methods/`).
//!
//! `auth`: the shared login check; `view`: what services get instead of
//! the node's database; `config`, `users`, `setup`, `backup`, `services`
//! (with `status`), `logs`, `system`: the admin doors' methods; `upload`:
//! raw bytes after a request (an update bundle), or a local file passed
//! with it (`upload_file`).

pub mod auth;
pub mod backup;
mod call;
mod client;
pub mod config;
pub mod logs;
mod protocol;
mod server;
pub mod services;
pub mod setup;
pub mod system;
pub mod token;
pub mod upload;
mod upload_file;
pub mod users;
pub mod view;

pub use call::{Stream, UNREACHABLE, Uploader, call, call_stream, control_socket, upload};
pub use client::{Client, ClientError};
pub use protocol::{Call, ErrorObject, MAX_ARCHIVE, MAX_LINE, Reply, Request, Response, RpcError};
pub use server::{
    ALPHAREN_GID, Handler, PGHA_UID, Peer, WEB_UID, bind, serve, service_socket, spawn_service,
};

/// A method's params as they go on the wire. The params structs here have
/// only string keys, so they always serialize.
pub fn to_params<P: serde::Serialize>(params: &P) -> serde_json::Value {
    serde_json::to_value(params).unwrap_or_else(|_| serde_json::json!({}))
}
