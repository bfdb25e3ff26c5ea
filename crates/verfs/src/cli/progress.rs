//! Progress of long commands (fsck, gc run --wait): a bar on stderr when it is a
//! terminal; otherwise plain lines (each phase's start, then how far it got at most
//! every few seconds), so a log or a pipe gets readable text without escape codes.

use std::cell::Cell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One progress display: a bar on a terminal, plain lines elsewhere.
pub struct Bar {
    pb: ProgressBar,
    prefix: &'static str,
    /// Not a terminal: print lines instead of drawing.
    plain: bool,
    /// The current phase's name and size, and when a line was last printed (plain
    /// mode; `None` before the first phase).
    name: std::cell::RefCell<String>,
    total: Cell<u64>,
    printed: Cell<Option<Instant>>,
}

/// Least time between two plain progress lines of one phase.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

impl Bar {
    /// A display whose lines start with `prefix` (the command's name).
    pub fn new(prefix: &'static str) -> Bar {
        let plain = !std::io::stderr().is_terminal();
        let target = if plain {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr_with_hz(10)
        };
        let pb = ProgressBar::with_draw_target(None, target);
        if let Ok(style) = ProgressStyle::with_template("{prefix}: {spinner} {msg}") {
            pb.set_style(style);
        }
        pb.set_prefix(prefix);
        pb.set_message("starting");
        if !plain {
            pb.enable_steady_tick(Duration::from_millis(200));
        }
        Bar {
            pb,
            prefix,
            plain,
            name: Default::default(),
            total: Cell::new(0),
            printed: Cell::new(None),
        }
    }

    /// Starts a phase named `name` with `total` steps (0: unknown, a counter is shown).
    pub fn phase(&self, name: &str, total: u64) {
        *self.name.borrow_mut() = name.to_string();
        self.total.set(total);
        self.printed.set(Some(Instant::now()));
        if self.plain {
            match total {
                0 => eprintln!("{}: {name}", self.prefix),
                n => eprintln!("{}: {name} (0/{n})", self.prefix),
            }
        }
        let template = if total > 0 {
            "{prefix}: {msg} [{bar:30}] {pos}/{len} ({eta})"
        } else {
            "{prefix}: {spinner} {msg} {pos}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            self.pb.set_style(style.progress_chars("=> "));
        }
        self.pb.set_prefix(self.prefix);
        self.pb.set_message(name.to_string());
        self.pb.set_length(total);
        self.pb.set_position(0);
    }

    /// Changes the phase's text without restarting it.
    pub fn message(&self, text: String) {
        self.pb.set_message(text);
    }

    /// Sets how many steps of the phase are done.
    pub fn set(&self, done: u64) {
        self.pb.set_position(done);
        let due = self
            .printed
            .get()
            .is_some_and(|t| t.elapsed() >= PLAIN_EVERY);
        if !self.plain || !due {
            return;
        }
        self.printed.set(Some(Instant::now()));
        let (prefix, name) = (self.prefix, self.name.borrow());
        match self.total.get() {
            0 => eprintln!("{prefix}: {name} ({done})"),
            t => eprintln!("{prefix}: {name} ({done}/{t}, {}%)", done.min(t) * 100 / t),
        }
    }

    /// Ends the display: the bar stays on the terminal at its last state.
    pub fn finish(&self) {
        if self.plain && self.printed.get().is_some() {
            eprintln!("{}: done", self.prefix);
        }
        self.pb.finish();
    }
}
