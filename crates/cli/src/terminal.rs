//! The local terminal of `run --tty` and `attach`: raw mode for the whole session, restored
//! on every way out, and its window size.
//!
//! Raw mode is held by [`RawMode`], which restores the saved settings when dropped (a normal
//! return, an error, a signal the caller turns into a return). A panic restores them too,
//! through a panic hook, since a panic in another thread never drops the guard.

use std::io::IsTerminal;
use std::sync::Mutex;

use rustix::termios::{self, OptionalActions, Termios};

/// The settings to put back, shared with the panic hook. None while not in raw mode.
static SAVED_SETTINGS: Mutex<Option<Termios>> = Mutex::new(None);

/// Whether stdin is a terminal (so raw mode, window sizes and escapes apply).
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// The window size of the terminal on stdin as (rows, cols); None when it has none (not a
/// terminal, or a terminal that was never given a size).
pub fn window_size() -> Option<(u16, u16)> {
    let size = termios::tcgetwinsize(std::io::stdin()).ok()?;
    (size.ws_row > 0 && size.ws_col > 0).then_some((size.ws_row, size.ws_col))
}

/// The terminal on stdin in raw mode: no echo, no line editing, no signals from keys, no
/// output processing, so every key reaches the remote terminal as the bytes it sends.
pub struct RawMode {
    _private: (),
}

impl RawMode {
    /// Saves the terminal's settings and switches it to raw mode.
    pub fn enter() -> std::io::Result<RawMode> {
        install_panic_hook();
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        raw.make_raw();
        *lock_saved() = Some(saved);
        // Drain, as ssh does: output already written is shown with the settings it was
        // written under.
        if let Err(e) = termios::tcsetattr(&stdin, OptionalActions::Drain, &raw) {
            lock_saved().take();
            return Err(e.into());
        }
        Ok(RawMode { _private: () })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the saved settings back, once. Safe to call from the panic hook.
fn restore() {
    if let Some(saved) = lock_saved().take() {
        let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &saved);
    }
}

/// The saved settings, even after a panic while they were locked: restoring them matters
/// more than what that panic interrupted.
fn lock_saved() -> std::sync::MutexGuard<'static, Option<Termios>> {
    SAVED_SETTINGS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Restores the terminal before the default hook prints the panic, so the message is
/// readable and the shell gets its terminal back even if the panic was in another thread.
fn install_panic_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
