//! A progress bar on standard error, drawn only when it is a terminal (reports go to
//! standard output and stay clean).

use std::io::{IsTerminal, Write};

pub(crate) struct Progress {
    what: &'static str,
    total: u64,
    shown: bool,
}

impl Progress {
    pub(crate) fn new(what: &'static str, total: u64) -> Progress {
        let p = Progress {
            what,
            total,
            shown: std::io::stderr().is_terminal(),
        };
        p.draw(0);
        p
    }

    pub(crate) fn set(&mut self, done: u64) {
        self.draw(done);
    }

    pub(crate) fn done(self) {
        if self.shown {
            eprintln!();
        }
    }

    fn draw(&self, done: u64) {
        if !self.shown {
            return;
        }
        eprint!("\r{}", bar(self.what, done, self.total));
        let _ = std::io::stderr().flush();
    }
}

/// `label [#####.....] done/total`, 30 cells wide.
fn bar(what: &str, done: u64, total: u64) -> String {
    const CELLS: u64 = 30;
    let filled = (done.min(total) * CELLS)
        .checked_div(total)
        .unwrap_or(CELLS);
    format!(
        "{what:>10} [{}{}] {done}/{total}",
        "#".repeat(filled as usize),
        ".".repeat((CELLS - filled) as usize)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn bar_fills_in_proportion() {
        assert_eq!(
            super::bar("joining", 10, 20),
            format!("   joining [{}{}] 10/20", "#".repeat(15), ".".repeat(15))
        );
        assert!(super::bar("x", 0, 0).contains(&"#".repeat(30)));
    }
}
