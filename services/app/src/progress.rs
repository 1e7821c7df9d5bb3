//! A replay's progress: a bar on a terminal, JSON lines (one object per report) otherwise.

use eventline_replay::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// Where progress reports go.
#[derive(Debug)]
pub struct Display {
    bar: Option<ProgressBar>,
}

impl Display {
    pub fn new(bar: bool) -> Self {
        Self {
            bar: bar.then(|| {
                let bar = ProgressBar::new(0);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {msg} [{bar:40}] {pos}/{len} events  {per_sec}  ETA {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar
            }),
        }
    }

    pub fn show(&mut self, progress: &Progress) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!("{} {}", progress.projection, progress.request_id));
                bar.set_length(progress.total);
                bar.set_position(progress.position);
            }
            None => {
                if let Ok(line) = serde_json::to_string(progress) {
                    println!("{line}");
                }
            }
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}
