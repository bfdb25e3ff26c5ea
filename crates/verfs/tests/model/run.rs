//! The runner: applies each op to the real files and to the model, checks size, end of
//! file and every byte after each op, and on a mismatch panics with a replayable report.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::gen::{random_op, GenState, Variant};
use super::ops::{apply_model, copy_expected, Mode, Op};
use super::rng::{base_seed, Rng};
use super::sys::{drop_caches_global, install_sigbus_note, AlignedBuf, File};

/// Bytes per `pread` when reading a whole file back.
const CHUNK: usize = 1 << 20;
/// Ops shown in a panic message (the full log is in a file).
const TAIL: usize = 30;
/// Most states kept per file since its last fsync; one more forces an fsync.
const MAX_STATES: usize = 32;
/// A run with no progress for this long is reported as a hang and aborts.
const HANG: Duration = Duration::from_secs(180);

/// Threads that keep the CPUs busy until dropped.
pub struct Hogs {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Hogs {
    /// Starts `n` spinning threads.
    pub fn start(n: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|i| {
                let stop = stop.clone();
                thread::spawn(move || {
                    let mut x = i as u64 + 1;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..10_000 {
                            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                        }
                        std::hint::black_box(x);
                    }
                })
            })
            .collect();
        Hogs { stop, threads }
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Aborts the test process if the run stops making progress (a hung syscall on the
/// mount would otherwise hang the suite); the op log names the op that hung.
struct Watchdog {
    progress: Arc<AtomicUsize>,
    done: Arc<AtomicBool>,
}

impl Watchdog {
    fn start(name: String, log: PathBuf) -> Self {
        let progress = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let (p, d) = (progress.clone(), done.clone());
        thread::spawn(move || {
            let (mut last, mut since) = (usize::MAX, Instant::now());
            while !d.load(Ordering::Relaxed) {
                let now = p.load(Ordering::Relaxed);
                if now != last {
                    (last, since) = (now, Instant::now());
                } else if since.elapsed() > HANG {
                    eprintln!(
                        "model {name}: no progress for {HANG:?} at step {now}; op log {}",
                        log.display()
                    );
                    std::process::abort();
                }
                thread::sleep(Duration::from_millis(500));
            }
        });
        Watchdog { progress, done }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// One model-checked run over files `a` and `b` in a directory of the mount.
pub struct Runner {
    /// The variant being run.
    pub v: Variant,
    /// The base seed (printed; `VERFS_MODEL_SEED` replays it).
    pub seed: u64,
    /// The op stream.
    pub rng: Rng,
    files: Vec<File>,
    /// What each file must hold.
    pub models: Vec<Vec<u8>>,
    /// States of each file since its last fsync, oldest (the fsync'd one) first.
    states: Vec<Vec<Vec<u8>>>,
    log: Vec<String>,
    log_file: std::fs::File,
    log_path: PathBuf,
    step: usize,
    modes: Vec<Mode>,
    mmap: bool,
    page: u64,
    /// Copies that returned fewer bytes than the source had (allowed, but counted).
    pub short_copies: usize,
    /// Check both files after every op (on by default; the race pattern turns it off
    /// between the ops whose window it aims at, and checks after them).
    pub checks: bool,
    /// When set, a mismatch is recorded here instead of panicking (for replay loops).
    pub soft_failures: Option<Vec<String>>,
    watchdog: Watchdog,
}

impl Runner {
    /// Opens `dir/a` and `dir/b` (created empty) for variant `v`.
    pub fn new(v: Variant, dir: &Path) -> Self {
        install_sigbus_note();
        let seed = base_seed();
        let log_path = std::env::temp_dir().join(format!("verfs-model-{}-{seed:#x}.log", v.name));
        eprintln!(
            "model {}: seed {seed:#x} (VERFS_MODEL_SEED={seed:#x} replays), {} ops, op log {}",
            v.name,
            v.op_count(),
            log_path.display()
        );
        let mut log_file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&log_path)
            .expect("create op log");
        writeln!(log_file, "# variant {} seed {seed:#x}\n# {v:?}", v.name).expect("write op log");
        let extra = if v.direct { libc::O_DIRECT } else { 0 };
        let files = ["a", "b"]
            .iter()
            .map(|n| {
                let f = File::open(&dir.join(n), extra)
                    .unwrap_or_else(|e| panic!("open {n} in {}: {e}", dir.display()));
                f.ftruncate(0).expect("truncate at start");
                f
            })
            .collect();
        Runner {
            rng: Rng::new(seed, v.name),
            watchdog: Watchdog::start(v.name.to_owned(), log_path.clone()),
            v,
            seed,
            files,
            models: vec![Vec::new(), Vec::new()],
            states: vec![vec![Vec::new()], vec![Vec::new()]],
            log: Vec::new(),
            log_file,
            log_path,
            step: 0,
            modes: Mode::ALL.to_vec(),
            mmap: true,
            page: 4096,
            short_copies: 0,
            checks: true,
            soft_failures: None,
        }
    }

    /// Draws and runs one random op.
    pub fn random_step(&mut self) {
        let st = GenState {
            sizes: [self.models[0].len() as u64, self.models[1].len() as u64],
            modes: &self.modes,
            mmap: self.mmap,
            page: self.page,
        };
        let op = random_op(&mut self.rng, &self.v, &st);
        self.exec(op);
    }

    fn note(&mut self, line: String) {
        let _ = writeln!(self.log_file, "{line}");
        self.log.push(line);
    }

    /// Runs `op` on the files and the model, then checks both files.
    pub fn exec(&mut self, op: Op) {
        self.step += 1;
        self.watchdog.progress.store(self.step, Ordering::Relaxed);
        let line = format!("{:6} {op}", self.step);
        let _ = writeln!(self.log_file, "{line}");
        let _ = self.log_file.flush();
        self.log.push(line);
        match self.apply_real(&op) {
            Ok(Some((data, copied))) => apply_model(&mut self.models, &op, &data, copied),
            Ok(None) => {}
            Err(e) => return self.fail(&format!("{op}: {e}")),
        }
        if let Op::Fsync { f } | Op::Fdatasync { f } = op {
            self.states[f] = vec![self.models[f].clone()];
        }
        if self.checks {
            self.check_now();
        }
        if let Some(f) = op.mutates() {
            self.states[f].push(self.models[f].clone());
            if self.v.fsync_after_write || self.states[f].len() > MAX_STATES {
                self.exec(Op::Fsync { f });
            }
        }
    }

    /// Checks both files against the model now (after ops run with `checks` off).
    pub fn check_now(&mut self) {
        for f in 0..2 {
            if let Err(e) = self.check(f) {
                self.note("#      ^ checked here".into());
                return self.fail(&e);
            }
        }
    }

    /// The op on the real files; the bytes it wrote and what a copy returned, or `None`
    /// when the mount refused it as unsupported (the model is left as it is).
    fn apply_real(&mut self, op: &Op) -> Result<Option<(Vec<u8>, u64)>, String> {
        let e = |e: std::io::Error| e.to_string();
        let mut data = Vec::new();
        let mut copied = 0;
        match *op {
            Op::Write { f, off, len, fill } => {
                data = fill.bytes(len as usize);
                self.files[f].pwrite_all(&data, off).map_err(e)?;
            }
            Op::Truncate { f, size } => self.files[f].ftruncate(size).map_err(e)?,
            Op::Falloc { f, mode, off, len } => {
                match self.files[f].fallocate(mode.flags(), off, len) {
                    Err(x) if x.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                        eprintln!(
                            "model {}: fallocate {mode:?} is EOPNOTSUPP; dropped from the mix",
                            self.v.name
                        );
                        self.modes.retain(|m| *m != mode);
                        self.note("#      ^ EOPNOTSUPP, mode dropped".into());
                        return Ok(None);
                    }
                    r => r.map_err(e)?,
                }
            }
            Op::Copy {
                src,
                off_in,
                dst,
                off_out,
                len,
            } => {
                let want = copy_expected(self.models[src].len() as u64, off_in, len);
                copied = self.files[src]
                    .copy_to(off_in, &self.files[dst], off_out, len)
                    .map_err(e)?;
                if copied > want {
                    return Err(format!("copied {copied:#x} bytes, source had {want:#x}"));
                }
                if copied < want {
                    self.short_copies += 1;
                    self.note(format!("#      ^ short copy: {copied:#x} of {want:#x}"));
                }
            }
            Op::MmapRead { f, off, len } => match self.files[f].mmap_read(off, len as usize) {
                Ok(got) => {
                    let want = &self.models[f][off as usize..(off + len) as usize];
                    if let Some(i) = first_diff(&got, want) {
                        return Err(format!(
                            "mmap read differs at {:#x}: got {:02x?} want {:02x?}",
                            off + i as u64,
                            window(&got, i),
                            window(want, i)
                        ));
                    }
                }
                Err(x) if x.raw_os_error() == Some(libc::ENODEV) => {
                    self.no_mmap();
                    return Ok(None);
                }
                Err(x) => return Err(e(x)),
            },
            Op::MmapWrite { f, off, len, fill } => {
                data = fill.bytes(len as usize);
                match self.files[f].mmap_write(off, &data) {
                    Ok(()) => {}
                    Err(x) if x.raw_os_error() == Some(libc::ENODEV) => {
                        self.no_mmap();
                        return Ok(None);
                    }
                    Err(x) => return Err(e(x)),
                }
            }
            Op::Read { f, off, len } => {
                let mut buf = AlignedBuf::zeroed(len as usize);
                let n = self.files[f].pread(&mut buf, off).map_err(e)?;
                let m = &self.models[f];
                let lo = (off as usize).min(m.len());
                let want = &m[lo..(off as usize + len as usize).min(m.len())];
                let got = &buf.as_slice()[..n];
                if n != want.len() {
                    return Err(format!(
                        "pread returned {n:#x} bytes, expected {:#x}",
                        want.len()
                    ));
                }
                if let Some(i) = first_diff(got, want) {
                    return Err(format!("pread differs at {:#x}", off + i as u64));
                }
            }
            Op::Fsync { f } => self.files[f].fsync().map_err(e)?,
            Op::Fdatasync { f } => self.files[f].fdatasync().map_err(e)?,
            Op::Reopen { f } => self.files[f].reopen().map_err(e)?,
            Op::Recreate { f } => self.files[f].recreate().map_err(e)?,
            Op::Sleep { ms } => thread::sleep(Duration::from_millis(ms)),
            Op::DropCache { global } => {
                for f in &self.files {
                    f.fadvise_dontneed().map_err(e)?;
                }
                if global && !drop_caches_global() {
                    self.note("#      ^ drop_caches not writable".into());
                }
            }
        }
        Ok(Some((data, copied)))
    }

    fn no_mmap(&mut self) {
        if self.mmap {
            eprintln!(
                "model {}: mmap is ENODEV on this mount; dropped from the mix",
                self.v.name
            );
            self.note("#      ^ ENODEV, mmap dropped".into());
            self.mmap = false;
        }
    }

    /// Size from `fstat` and `lseek(SEEK_END)`, and every byte, against the model.
    fn check(&self, f: usize) -> Result<(), String> {
        let file = &self.files[f];
        let want = &self.models[f];
        let name = ["a", "b"][f];
        let len = want.len() as u64;
        let st = file
            .fstat_size()
            .map_err(|e| format!("fstat {name}: {e}"))?;
        let end = file.seek_end().map_err(|e| format!("lseek {name}: {e}"))?;
        if st != len || end != len {
            return Err(format!(
                "{name}: size {len:#x} expected, fstat says {st:#x}, lseek(SEEK_END) says {end:#x}"
            ));
        }
        let got = read_all(file).map_err(|e| format!("pread {name}: {e}"))?;
        if let Some(i) = first_diff(&got, want) {
            let zeros = got[i..].iter().take_while(|b| **b == 0).count();
            return Err(format!(
                "{name}: bytes differ at {i:#x} (read {:#x} bytes, expected {len:#x}); \
                 got {:02x?} want {:02x?}; {zeros:#x} zero bytes read from there",
                got.len(),
                window(&got, i),
                window(want, i)
            ));
        }
        Ok(())
    }

    fn fail(&mut self, what: &str) {
        thread::sleep(Duration::from_secs(2));
        let later = match (self.check(0), self.check(1)) {
            (Ok(()), Ok(())) => "healed 2 s later".to_owned(),
            (Err(e), _) | (_, Err(e)) => format!("2 s later still: {e}"),
        };
        let tail = self.log[self.log.len().saturating_sub(TAIL)..].join("\n");
        let msg = format!(
            "model {} seed {:#x}: step {}: {what}\n({later})\nlast ops:\n{tail}\nfull op log: {}\n\
             replay: VERFS_MODEL_SEED={:#x} VERFS_MODEL_OPS={} cargo test --release -p verfs \
             --test model_ops -- {}",
            self.v.name,
            self.seed,
            self.step,
            self.log_path.display(),
            self.seed,
            self.v.op_count(),
            self.v.name
        );
        let _ = writeln!(self.log_file, "# FAILED: {what}\n# {later}");
        match &mut self.soft_failures {
            Some(v) => v.push(msg),
            None => panic!("{msg}"),
        }
    }

    /// Closes both files (before a clean stop or after a crash).
    pub fn close_all(&mut self) {
        for f in &mut self.files {
            f.close();
        }
    }

    /// Opens both files again (after a remount) and checks them against the model.
    pub fn reopen_all(&mut self) {
        for f in 0..2 {
            if let Err(e) = self.files[f].reopen() {
                return self.fail(&format!("reopen {} after remount: {e}", ["a", "b"][f]));
            }
        }
        self.note("# reopened both files after the remount".into());
        for f in 0..2 {
            if let Err(e) = self.check(f) {
                return self.fail(&e);
            }
        }
    }

    /// After a crash only what was fsync'd is required: each file must equal its state at
    /// its last fsync or one of the states after it, or else be a mix of them in which
    /// unsynced writes are partly present (a batch commits whole chunks, so an unsynced
    /// write may survive cut at a chunk boundary): its size within the sizes those states
    /// had, and every byte equal to that byte in one of them. Bytes no op touched since
    /// the fsync agree in every state, so they must be exact. The model then takes what
    /// is there, which becomes durable (also after a mismatch, so a replay loop goes on).
    pub fn reopen_after_crash(&mut self) {
        let (mut errors, mut found) = (Vec::new(), Vec::new());
        for f in 0..2 {
            let name = ["a", "b"][f];
            let got = match self.files[f]
                .reopen()
                .and_then(|()| read_all(&self.files[f]))
            {
                Ok(g) => g,
                Err(e) => {
                    errors.push(format!("reopen and read {name} after crash: {e}"));
                    continue;
                }
            };
            let count = self.states[f].len();
            match self.states[f].iter().position(|s| *s == got) {
                Some(i) => self.note(format!(
                    "# after crash {name} = state {i} of {} since its last fsync",
                    count - 1
                )),
                None => match torn_mix(&got, &self.states[f]) {
                    Ok(()) => self.note(format!(
                        "# after crash {name} ({:#x} bytes) mixes the {count} states since its \
                         last fsync (an unsynced write partly present)",
                        got.len()
                    )),
                    Err(why) => {
                        let durable = &self.states[f][0];
                        let i = first_diff(&got, durable).unwrap_or(0);
                        errors.push(format!(
                            "after kill -9 {name} ({:#x} bytes) matches none of the {count} \
                             states since its last fsync ({why}); vs the fsync'd state ({:#x} \
                             bytes) first difference at {i:#x}",
                            got.len(),
                            durable.len()
                        ));
                    }
                },
            }
            found.push((f, got));
        }
        if !errors.is_empty() {
            self.fail(&errors.join("; "));
        }
        for (f, got) in found {
            self.models[f] = got.clone();
            self.states[f] = vec![got];
        }
        if errors.is_empty() {
            self.check_now();
        }
    }

    /// Prints a one-line summary of the run.
    pub fn summary(&self, started: Instant) {
        eprintln!(
            "model {}: seed {:#x}: {} ops passed in {:.1?}; sizes a={:#x} b={:#x}; \
             {} short copies; fallocate modes left {:?}; mmap {}",
            self.v.name,
            self.seed,
            self.step,
            started.elapsed(),
            self.models[0].len(),
            self.models[1].len(),
            self.short_copies,
            self.modes,
            if self.mmap { "on" } else { "off" }
        );
    }
}

/// The whole file, read with `pread` in aligned chunks until a read comes back short
/// (end of file for a regular file).
fn read_all(file: &File) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = AlignedBuf::zeroed(CHUNK);
    loop {
        let n = file.pread(&mut buf, out.len() as u64)?;
        out.extend_from_slice(&buf.as_slice()[..n]);
        if n < CHUNK {
            return Ok(out);
        }
    }
}

/// First offset where `a` and `b` differ, counting a length difference.
fn first_diff(a: &[u8], b: &[u8]) -> Option<usize> {
    let n = a.len().min(b.len());
    a[..n]
        .iter()
        .zip(&b[..n])
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then_some(n))
}

/// Up to 8 bytes from `i`.
fn window(b: &[u8], i: usize) -> &[u8] {
    &b[i.min(b.len())..(i + 8).min(b.len())]
}

/// Whether `got` is made of the `states` (see `reopen_after_crash`): the size within
/// theirs, each byte equal to the same byte of one of them.
fn torn_mix(got: &[u8], states: &[Vec<u8>]) -> Result<(), String> {
    let min = states.iter().map(Vec::len).min().unwrap_or(0);
    let max = states.iter().map(Vec::len).max().unwrap_or(0);
    if got.len() < min || got.len() > max {
        return Err(format!("size outside {min:#x}..={max:#x}"));
    }
    match (0..got.len()).find(|&i| !states.iter().any(|s| s.get(i) == Some(&got[i]))) {
        Some(i) => Err(format!("byte {i:#x} is in no state")),
        None => Ok(()),
    }
}
