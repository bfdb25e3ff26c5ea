//! The control socket: `data_dir/verfsnext.sock`, mode 0600. One JSON request per line,
//! one JSON response per line, then the connection closes.

pub mod client;
pub mod server;

/// The socket's file name inside the data dir.
pub const SOCKET_NAME: &str = "verfsnext.sock";

/// Longest request line accepted.
const MAX_LINE: u64 = 64 * 1024;
