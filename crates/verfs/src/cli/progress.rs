//! Progress of long commands (fsck, gc run --wait): a bar on stderr when it is a
//! terminal, nothing otherwise, so piped output stays plain lines.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One progress display; hidden unless stderr is a terminal.
pub struct Bar {
    pb: ProgressBar,
    prefix: &'static str,
}

impl Bar {
    /// A display whose lines start with `prefix` (the command's name).
    pub fn new(prefix: &'static str) -> Bar {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        let pb = ProgressBar::with_draw_target(None, target);
        if let Ok(style) = ProgressStyle::with_template("{prefix}: {spinner} {msg}") {
            pb.set_style(style);
        }
        pb.set_prefix(prefix);
        pb.set_message("starting");
        pb.enable_steady_tick(Duration::from_millis(200));
        Bar { pb, prefix }
    }

    /// Starts a phase named `name` with `total` steps (0: unknown, a counter is shown).
    pub fn phase(&self, name: &str, total: u64) {
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
    }

    /// Removes the display.
    pub fn finish(&self) {
        self.pb.finish_and_clear();
    }
}
