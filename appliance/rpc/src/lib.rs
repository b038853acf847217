//! The control protocol: JSON-RPC 2.0, one JSON object per line, over a Unix
//! socket whose peer credentials decide access. The supervisor serves it on
//! `<state>/run/control.sock`; services that answer their own methods serve
//! it on `<state>/run/<service>.sock` and the supervisor forwards to them.
//!
//! This crate knows framing, messages and access, nothing of what the
//! methods do, except the shapes of the methods services themselves call
//! (`auth`: the shared login check; `view`: what they get instead of the
//! node's database).

pub mod auth;
mod call;
mod client;
mod protocol;
mod server;
pub mod token;
pub mod view;

pub use call::{Stream, UNAVAILABLE, call, call_stream, control_socket};
pub use client::{Client, ClientError};
pub use protocol::{Call, ErrorObject, MAX_LINE, Reply, Request, Response, RpcError};
pub use server::{ALPHAREN_GID, Handler, Peer, bind, serve, service_socket, spawn_service};
