//! `verfsnext crypt`: create, unlock, lock and re-key `/.vault`, or show its state.
//!
//! Exit status: 0 done, 1 usage or state error (exists already, not created, already
//! locked), 2 no daemon, 3 wrong password or wrong key file, 4 key file unreadable or
//! malformed. The seed's flags (`-c`, `-u`, `-l`, `-p PASS`, `-k KEYFILE`,
//! `-path DIR`) are kept as aliases of the long forms.

use std::io::{BufRead, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use verfs_core::control::{Request, Response, Secret, VaultRefusal, VaultRequest};
use verfs_core::vault::{KeyFile, KEY_FILE_NAME};

use super::ConfigArgs;
use crate::control::client;

/// Largest key file read (a real one is 64 bytes).
const MAX_KEY_FILE: u64 = 4096;

/// Arguments of `verfsnext crypt`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("action").required(true)
    .args(["create", "unlock", "lock", "change_password", "status"])))]
pub struct CryptArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Create the vault and write its key file (`verfsnext.vault.key`) to --key-dir.
    #[arg(short = 'c', long)]
    create: bool,
    /// Unlock the vault (needs --key-file).
    #[arg(short = 'u', long)]
    unlock: bool,
    /// Lock the vault: queued writes are committed, then keys and cached plaintext are
    /// dropped and open files inside fail with EIO.
    #[arg(short = 'l', long)]
    lock: bool,
    /// Re-wrap the vault key under a new password (needs --key-file); data is untouched.
    #[arg(long)]
    change_password: bool,
    /// Print none, locked or unlocked.
    #[arg(long)]
    status: bool,
    /// The password (visible to other users in the process list: prefer the prompt,
    /// stdin or --password-file). With --change-password, the current one.
    #[arg(short = 'p', long, value_name = "PASS")]
    password: Option<String>,
    /// Read the password from the first line of FILE.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// With --change-password: read the new password from the first line of FILE.
    #[arg(long, value_name = "FILE")]
    new_password_file: Option<PathBuf>,
    /// The vault's key file.
    #[arg(short = 'k', long, value_name = "KEYFILE")]
    key_file: Option<PathBuf>,
    /// Where --create writes the key file (default: the working directory); the seed's
    /// `-path DIR` works too.
    #[arg(long, value_name = "DIR")]
    key_dir: Option<PathBuf>,
    /// With --status: print JSON.
    #[arg(long)]
    json: bool,
}

/// Rewrites the seed's single-dash long flag `-path` into `--key-dir`, which clap
/// cannot parse as such; only after the `crypt` subcommand.
pub fn seed_aliases(args: Vec<String>) -> Vec<String> {
    let Some(at) = args.iter().position(|a| a == "crypt") else {
        return args;
    };
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            if i > at && a == "-path" {
                "--key-dir".into()
            } else {
                a
            }
        })
        .collect()
}

/// A refusal with its exit status.
#[derive(Debug)]
struct Refused(u8, String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Refused {}

/// Runs the command and maps its outcome to the documented exit status.
pub fn run(args: &CryptArgs) -> ExitCode {
    match dispatch(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("verfsnext: crypt: {e:#}");
            if e.downcast_ref::<client::NoDaemon>().is_some() {
                ExitCode::from(2)
            } else if let Some(Refused(code, _)) = e.downcast_ref::<Refused>() {
                ExitCode::from(*code)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn dispatch(args: &CryptArgs) -> Result<()> {
    if args.password.is_some() {
        eprintln!("verfsnext: warning: a password given with -p is visible to other users in the process list");
    }
    let dir = super::config::load(&args.config)?.data_dir;
    if args.status {
        return status(&dir, args.json);
    }
    if args.lock {
        return answer(&dir, VaultRequest::Lock).map(|_| println!("vault locked"));
    }
    if args.create {
        return create(&dir, args);
    }
    let key_file = read_key_file(args)?;
    if args.unlock {
        let password = password(args, "Vault password: ")?;
        answer(&dir, VaultRequest::Unlock { password, key_file })?;
        println!("vault unlocked: {}", dir.display());
        return Ok(());
    }
    let old_password = password(args, "Current vault password: ")?;
    let new_password = new_password(args)?;
    answer(
        &dir,
        VaultRequest::ChangePassword {
            old_password,
            new_password,
            key_file,
        },
    )?;
    println!("vault password changed");
    Ok(())
}

fn status(dir: &Path, json: bool) -> Result<()> {
    let state = answer(dir, VaultRequest::Status)?;
    if json {
        println!("{}", serde_json::json!({ "state": state }));
    } else {
        println!("{state}");
    }
    Ok(())
}

/// Sends a vault request; returns the state it left, or the refusal with its status.
fn answer(dir: &Path, req: VaultRequest) -> Result<String> {
    match client::call(dir, &Request::Vault(req))? {
        Response::Vault { state } => Ok(state),
        Response::VaultRefused { kind, message } => {
            let code = match kind {
                VaultRefusal::State | VaultRefusal::Failed => 1,
                VaultRefusal::WrongKey => 3,
                VaultRefusal::KeyFile => 4,
            };
            Err(Refused(code, message).into())
        }
        _ => bail!("unexpected answer to a vault command"),
    }
}

/// `crypt -c`: writes a new key file (never over an existing one), then asks the
/// daemon to create the vault; the key file is removed again if that is refused.
fn create(dir: &Path, args: &CryptArgs) -> Result<()> {
    let key_dir = match &args.key_dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().context("working directory")?,
    };
    let path = key_dir.join(KEY_FILE_NAME);
    let password = password_twice(args)?;
    let key = KeyFile::generate().map_err(|e| Refused(1, e.to_string()))?;
    key.write_new(&path).map_err(|e| {
        Refused(
            4,
            format!("{e} (an existing key file is never overwritten)"),
        )
    })?;
    let key_file = Secret::new(key.encode().to_vec());
    if let Err(e) = answer(dir, VaultRequest::Create { password, key_file }) {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    println!(
        "vault created and unlocked; key file {} (keep it: the vault cannot be opened without it)",
        path.display()
    );
    Ok(())
}

fn read_key_file(args: &CryptArgs) -> Result<Secret> {
    let Some(path) = &args.key_file else {
        return Err(Refused(1, "this needs --key-file KEYFILE (-k)".into()).into());
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_KEY_FILE).read_to_end(&mut bytes))
        .map_err(|e| Refused(4, format!("key file {}: {e}", path.display())))?;
    Ok(Secret::new(bytes))
}

/// The password: -p, --password-file, else the terminal (no echo), else a line of stdin.
fn password(args: &CryptArgs, prompt: &str) -> Result<Secret> {
    if let Some(p) = &args.password {
        return Ok(Secret::new(p.as_bytes().to_vec()));
    }
    if let Some(f) = &args.password_file {
        return first_line_of(f);
    }
    prompt_or_stdin(prompt)
}

/// A new password: asked twice on a terminal.
fn password_twice(args: &CryptArgs) -> Result<Secret> {
    if args.password.is_some() || args.password_file.is_some() || !std::io::stdin().is_terminal() {
        return password(args, "");
    }
    confirmed("New vault password: ")
}

fn new_password(args: &CryptArgs) -> Result<Secret> {
    if let Some(f) = &args.new_password_file {
        return first_line_of(f);
    }
    if std::io::stdin().is_terminal() {
        return confirmed("New vault password: ");
    }
    prompt_or_stdin("")
}

fn confirmed(prompt: &str) -> Result<Secret> {
    let a = prompt_or_stdin(prompt)?;
    let b = prompt_or_stdin("Repeat it: ")?;
    if a != b {
        return Err(Refused(1, "the passwords differ".into()).into());
    }
    Ok(a)
}

fn prompt_or_stdin(prompt: &str) -> Result<Secret> {
    if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(prompt).context("reading the password")?;
        return Ok(Secret::new(p.into_bytes()));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(Secret::new(trim_newline(line)))
}

fn first_line_of(path: &Path) -> Result<Secret> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("password file {}", path.display()))?;
    let line = text.lines().next().unwrap_or("").to_string();
    Ok(Secret::new(line.into_bytes()))
}

fn trim_newline(mut s: String) -> Vec<u8> {
    while s.ends_with('\n') || s.ends_with('\r') {
        s.pop();
    }
    s.into_bytes()
}
