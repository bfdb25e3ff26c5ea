//! The CLI side of the control socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{bail, Context, Result};
use verfs_core::control::{Request, Response};

use super::SOCKET_NAME;

/// No daemon listens on the data dir's control socket (exit status 2 in the CLI).
#[derive(Debug)]
pub struct NoDaemon {
    data_dir: std::path::PathBuf,
    socket: std::path::PathBuf,
    cause: std::io::Error,
}

impl std::fmt::Display for NoDaemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no running verfsnext daemon for data dir {} (socket {}: {}); mount it first \
             (`verfsnext mount` or `mount -t fuse.verfsnext {} MOUNTPOINT`) or name the data \
             dir it serves with --data-dir or --config",
            self.data_dir.display(),
            self.socket.display(),
            self.cause,
            self.data_dir.display()
        )
    }
}

impl std::error::Error for NoDaemon {}

/// Longest answer accepted (a diff of a large tree is long).
const MAX_ANSWER: u64 = 1 << 30;

/// Sends one request to the daemon serving `data_dir` and returns its answer.
///
/// Fails when no daemon listens there or the answer is not a valid response; a
/// `Response::Error` is returned as an error with the daemon's message.
pub fn call(data_dir: &Path, req: &Request) -> Result<Response> {
    let path = data_dir.join(SOCKET_NAME);
    let stream = UnixStream::connect(&path).map_err(|cause| NoDaemon {
        data_dir: data_dir.to_path_buf(),
        socket: path.clone(),
        cause,
    })?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    (&stream).write_all(&line)?;
    let mut answer = String::new();
    BufReader::new((&stream).take(MAX_ANSWER)).read_line(&mut answer)?;
    let resp: Response = serde_json::from_str(answer.trim())
        .with_context(|| format!("unreadable answer from {}", path.display()))?;
    if let Response::Error { message } = &resp {
        bail!("{message}");
    }
    Ok(resp)
}
