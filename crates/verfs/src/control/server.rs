//! The daemon side of the control socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use verfs_core::control::{Control, Request, Response};

use super::{MAX_LINE, SOCKET_NAME};

/// A listening control socket; [`Server::stop`] closes it and removes the file.
pub struct Server {
    path: PathBuf,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds the socket in `data_dir` (replacing a stale one: the caller holds the data
    /// dir lock) and serves `ctl` on a thread.
    ///
    /// Fails if the socket cannot be bound or its mode set.
    pub fn start(ctl: Arc<dyn Control>, data_dir: &Path) -> Result<Server> {
        let path = data_dir.join(SOCKET_NAME);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .with_context(|| format!("cannot bind control socket {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict control socket {}", path.display()))?;
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = stopping.clone();
        let thread = std::thread::Builder::new()
            .name("verfs-control".into())
            .spawn(move || accept_loop(&listener, ctl, &stop))
            .context("cannot start control thread")?;
        Ok(Server {
            path,
            stopping,
            thread: Some(thread),
        })
    }

    /// Stops accepting and removes the socket file.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::Release);
        // Wake the blocking accept.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(listener: &UnixListener, ctl: Arc<dyn Control>, stopping: &AtomicBool) {
    for conn in listener.incoming() {
        if stopping.load(Ordering::Acquire) {
            return;
        }
        match conn {
            Ok(stream) => {
                let ctl = ctl.clone();
                let spawned = std::thread::Builder::new()
                    .name("verfs-control-conn".into())
                    .spawn(move || {
                        if let Err(e) = serve_one(stream, ctl.as_ref()) {
                            tracing::warn!(error = %e, "control connection failed");
                        }
                    });
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "cannot start control connection thread");
                }
            }
            Err(e) => tracing::warn!(error = %e, "control socket accept failed"),
        }
    }
}

fn serve_one(stream: UnixStream, ctl: &dyn Control) -> Result<()> {
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_LINE)).read_line(&mut line)?;
    let resp = match serde_json::from_str::<Request>(line.trim()) {
        Ok(req) => ctl.handle(req),
        Err(e) => Response::Error {
            message: format!("bad request: {e}"),
        },
    };
    let mut out = serde_json::to_vec(&resp)?;
    out.push(b'\n');
    (&stream).write_all(&out)?;
    Ok(())
}
