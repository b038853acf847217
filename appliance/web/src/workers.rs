//! The HTTPS workers, as nginx's worker processes: one thread per core,
//! each a current-thread tokio runtime with its own `SO_REUSEPORT`
//! listener on the HTTPS port. The kernel spreads new connections over
//! the listeners, and a connection's accept, TLS, HTTP, handlers and
//! proxying then stay on one thread: no hand-off between runtime
//! threads (each one a cross-core wakeup) on the way of a request.
//!
//! State shared by all workers (limits, sessions, login and dyndns
//! failure windows, metrics, the certificate) lives behind `Arc`s in
//! [`crate::App`] as before; what is worth keeping per worker (backend
//! connection pools) is indexed by [`index`].

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::Error;

/// Pending connections the kernel queues per listener.
const BACKLOG: u32 = 1024;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The worker the calling thread is (0 outside the workers).
pub fn index() -> usize {
    INDEX.get()
}

/// How many workers: one per core the process may run on (as nginx's
/// `worker_processes auto`), one when that is unknown.
pub fn count(cores: Option<usize>) -> usize {
    cores.unwrap_or(1).max(1)
}

/// The running workers; they live as long as the process.
pub struct Workers {
    handles: Vec<Handle>,
}

impl Workers {
    pub fn start(n: usize) -> Result<Workers, Error> {
        let mut handles = Vec::with_capacity(n);
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::Io("tokio runtime".into(), e))?;
            handles.push(rt.handle().clone());
            std::thread::Builder::new()
                .name(format!("web-{i}"))
                .spawn(move || {
                    INDEX.set(i);
                    rt.block_on(std::future::pending::<()>());
                })
                .map_err(|e| Error::Io("web worker thread".into(), e))?;
        }
        Ok(Workers { handles })
    }

    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// One `SO_REUSEPORT` listener on `addr` per worker, each served by
    /// `serve` on its worker. All or none: on an error the listeners made
    /// so far are closed.
    pub fn listen<F, Fut>(&self, addr: SocketAddr, serve: F) -> Result<Vec<JoinHandle<()>>, Error>
    where
        F: Fn(TcpListener) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut listeners = Vec::with_capacity(self.handles.len());
        for h in &self.handles {
            let _in = h.enter();
            listeners.push(reuseport_listener(addr).map_err(|e| Error::Bind(addr, e))?);
        }
        Ok(self
            .handles
            .iter()
            .zip(listeners)
            .map(|(h, l)| h.spawn(serve(l)))
            .collect())
    }
}

/// A listener that shares its port with the other workers' (registered
/// with the runtime entered by the caller).
fn reuseport_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_worker_per_core() {
        assert_eq!(count(Some(1)), 1);
        assert_eq!(count(Some(2)), 2);
        assert_eq!(count(Some(8)), 8);
        assert_eq!(count(None), 1, "cores unknown");
        assert_eq!(count(Some(0)), 1);
    }
}
