//! Repository hygiene as ordinary tests (rust-analyzer's tidy): the checkout stays self-contained
//! and its top level stays the map `docs/ARCHITECTURE.md` describes.

use std::path::{Component, Path, PathBuf};

/// What may stand at the top of the repository. A new entry here is a decision: say it in
/// `docs/ARCHITECTURE.md` too.
const TOP_LEVEL: &[&str] = &[
    ".cargo",
    ".ci",
    ".gitignore",
    ".pre-commit-hooks.yaml",
    "Cargo.lock",
    "Cargo.toml",
    "README.md",
    "clippy.toml",
    "crates",
    "docs",
    "fuzz",
    "inventory",
    "tests",
    "xtask",
];

/// The files git tracks, relative to the workspace root.
fn tracked_files() -> Vec<PathBuf> {
    let git = hostage_tests::require(hostage_tests::GIT);
    let root = hostage_tests::workspace_root();
    let listing = duct::cmd!(git, "ls-files", "-z")
        .dir(&root)
        .read()
        .expect("git ls-files runs in the checkout");
    listing
        .split('\0')
        .filter(|name| !name.is_empty())
        .map(PathBuf::from)
        // A file deleted in the work tree but not yet in the index is not part of the checkout.
        .filter(|path| root.join(path).exists())
        .collect()
}

#[test]
fn the_top_level_holds_only_the_known_entries() {
    let mut unexpected: Vec<String> = tracked_files()
        .iter()
        .filter_map(|path| path.components().next())
        .map(|first| first.as_os_str().to_string_lossy().into_owned())
        .filter(|first| !TOP_LEVEL.contains(&first.as_str()))
        .collect();
    unexpected.sort();
    unexpected.dedup();
    assert!(
        unexpected.is_empty(),
        "unexpected top-level entries {unexpected:?}: move them where they belong (see \
         docs/ARCHITECTURE.md) or add them to TOP_LEVEL in tests/it/tidy.rs with a reason"
    );
}

/// The markdown link targets in `text`: what stands between `](` and the next `)`.
fn markdown_link_targets(text: &str) -> Vec<(usize, &str)> {
    let mut targets = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push((number + 1, after[..end].trim()));
            rest = &after[end..];
        }
    }
    targets
}

/// Whether `target`, a link written in `file`, points outside the repository.
fn leaves_the_repository(file: &Path, target: &str) -> bool {
    if target.contains("://") || target.starts_with("mailto:") {
        return true;
    }
    let target = target.split('#').next().unwrap_or_default();
    if target.is_empty() {
        return false;
    }
    if target.starts_with('/') {
        return true;
    }
    // Walk the components from the file's directory; going above the root leaves the repository.
    let mut depth = file.components().count() as isize - 1;
    for component in Path::new(target).components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

#[test]
fn docs_and_manifests_point_only_inside_the_repository() {
    let root = hostage_tests::workspace_root();
    let mut outside = Vec::new();
    for file in tracked_files() {
        let name = file.to_string_lossy();
        let is_doc = name.ends_with(".md");
        let is_manifest = name.ends_with("Cargo.toml");
        if !is_doc && !is_manifest {
            continue;
        }
        let text = fs_err::read_to_string(root.join(&file)).expect("a tracked text file");
        for (number, line) in text.lines().enumerate() {
            // The team's reference notes are not part of a clone: their facts belong in docs/.
            if line.contains("shared/docs") {
                outside.push(format!("{name}:{}: names ../shared/docs", number + 1));
            }
        }
        if is_doc {
            for (number, target) in markdown_link_targets(&text) {
                if leaves_the_repository(&file, target) {
                    outside.push(format!("{name}:{number}: links to {target}"));
                }
            }
        }
    }
    assert!(
        outside.is_empty(),
        "docs must stand on their own in a fresh clone; put the facts into docs/ instead:\n{}",
        outside.join("\n")
    );
}

#[test]
fn link_check_sees_escapes_and_allows_inside_links() {
    let doc = Path::new("docs/guide.md");
    assert!(leaves_the_repository(doc, "../../shared/docs/x.md"));
    assert!(leaves_the_repository(doc, "https://example.org/"));
    assert!(leaves_the_repository(doc, "/etc/passwd"));
    assert!(!leaves_the_repository(doc, "../README.md"));
    assert!(!leaves_the_repository(doc, "rekey.md#journal"));
    assert!(!leaves_the_repository(doc, "#section"));
    assert_eq!(
        markdown_link_targets("see [a](b.md) and [c](../d.md#e)"),
        vec![(1, "b.md"), (1, "../d.md#e")]
    );
}
