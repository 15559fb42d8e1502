//! `hostage man DIR`: the man pages, generated from the one clap definition (like the
//! completions), one page for `hostage` and one per verb (`hostage-onboard.1`…).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::cli::Cli;

/// Every page as (file name, roff text).
pub fn pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut command = Cli::command();
    command.build();
    let mut pages = vec![("hostage.1".to_owned(), render(command.clone())?)];
    for sub in command.get_subcommands() {
        let name = format!("hostage-{}", sub.get_name());
        let page = sub
            .clone()
            .display_name(name.clone())
            .bin_name(name.clone());
        pages.push((format!("{name}.1"), render(page)?));
    }
    Ok(pages)
}

fn render(command: clap::Command) -> anyhow::Result<Vec<u8>> {
    let mut buffer = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut buffer)
        .context("cannot render a man page")?;
    Ok(buffer)
}

/// Writes every page into `dir` (created if needed); returns the files written.
pub fn write(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fs_err::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (name, text) in pages()? {
        let path = dir.join(name);
        hostage_atomic::write(&path, &text)?;
        written.push(path);
    }
    Ok(written)
}
