//! The CLI side of the control socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{bail, Context, Result};
use verfs_core::control::{Request, Response};

use super::{MAX_LINE, SOCKET_NAME};

/// Sends one request to the daemon serving `data_dir` and returns its answer.
///
/// Fails when no daemon listens there or the answer is not a valid response; a
/// `Response::Error` is returned as an error with the daemon's message.
pub fn call(data_dir: &Path, req: &Request) -> Result<Response> {
    let path = data_dir.join(SOCKET_NAME);
    let stream = UnixStream::connect(&path).with_context(|| {
        format!(
            "no running verfsnext daemon for data dir {} (socket {})",
            data_dir.display(),
            path.display()
        )
    })?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    (&stream).write_all(&line)?;
    let mut answer = String::new();
    BufReader::new((&stream).take(MAX_LINE * 16)).read_line(&mut answer)?;
    let resp: Response = serde_json::from_str(answer.trim())
        .with_context(|| format!("unreadable answer from {}", path.display()))?;
    if let Response::Error { message } = &resp {
        bail!("daemon refused: {message}");
    }
    Ok(resp)
}
