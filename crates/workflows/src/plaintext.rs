//! The plaintext guard: a file that a `.sops.yaml` creation rule covers but that carries no sops
//! metadata is a plaintext secret about to be committed (the seed's first anti-pattern). The walk
//! is git's own (`hostage_rekey::walk`), so git-ignored files are skipped; files an
//! [`AllowList`] pattern matches (documentation, Nix modules, public keys, templates) are not
//! secrets and are left alone.

use std::path::Path;

use hostage_rekey::FileList;
use hostage_sops::rules::SopsConfig;
use hostage_sops::{SopsError, SopsFile};
use regex::Regex;
use serde::Serialize;

use crate::WorkflowError;

/// Patterns of files that may stay plaintext under a creation rule, whatever the user adds: the
/// seed keeps its name→path Nix module (`secrets/default.nix`) and its public keys
/// (`pubkeys/*.pub`) beside the secrets, and documentation and git's own files live everywhere.
pub const DEFAULT_ALLOW: &[&str] = &[
    "*.nix",
    "*.pub",
    "*.md",
    ".gitignore",
    ".gitattributes",
    ".gitkeep",
];

/// The glob patterns of files that are not secrets even though a creation rule covers them.
///
/// A pattern without `/` matches a file name in any directory (`*.template`); one with `/` matches
/// the path relative to the `.sops.yaml` directory from its start (`secrets/examples/**`). `*`
/// and `?` stay inside one path component, `**` crosses them; every other character is literal.
#[derive(Debug, Clone)]
pub struct AllowList {
    patterns: Vec<(String, Regex)>,
}

impl AllowList {
    /// [`DEFAULT_ALLOW`] plus `extra` (the `--allow` options).
    pub fn new(extra: &[String]) -> crate::Result<Self> {
        let mut patterns = Vec::new();
        for pattern in DEFAULT_ALLOW
            .iter()
            .map(|p| (*p).to_owned())
            .chain(extra.iter().cloned())
        {
            let regex = glob_regex(&pattern)?;
            patterns.push((pattern, regex));
        }
        Ok(Self { patterns })
    }

    /// The pattern that allows `relative` (a `/`-separated path below the `.sops.yaml`
    /// directory), if one does.
    pub fn allows(&self, relative: &str) -> Option<&str> {
        let name = relative.rsplit('/').next().unwrap_or(relative);
        self.patterns
            .iter()
            .find(|(pattern, regex)| {
                let subject = if pattern.trim_start_matches('/').contains('/') {
                    relative
                } else {
                    name
                };
                regex.is_match(subject)
            })
            .map(|(pattern, _)| pattern.as_str())
    }

    /// The patterns, defaults first (for reports).
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|(p, _)| p.as_str())
    }
}

/// Translates one glob into an anchored regex (see [`AllowList`]).
fn glob_regex(pattern: &str) -> crate::Result<Regex> {
    let body = pattern.trim_start_matches('/');
    if body.is_empty() {
        return Err(WorkflowError::refused_with_hint(
            format!("--allow {pattern:?} is empty"),
            "give a glob such as '*.template' or 'secrets/examples/**'",
        ));
    }
    let mut out = String::from("^");
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                    out.push_str("(?:.*/)?");
                } else {
                    out.push_str(".*");
                }
            }
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            other => out.push_str(&regex::escape(&other.to_string())),
        }
    }
    out.push('$');
    Regex::new(&out).map_err(|e| {
        WorkflowError::refused_with_hint(
            format!("--allow {pattern:?} is not a usable glob: {e}"),
            "use *, ** and ? as wildcards; every other character is literal",
        )
    })
}

/// A plaintext file a creation rule covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlaintextFile {
    /// Relative to the `.sops.yaml` directory.
    pub path: String,
    /// The covering rule's 0-based index.
    pub rule: usize,
    /// The covering rule's line in `.sops.yaml` (1-based).
    pub rule_line: usize,
    /// The covering rule's `path_regex` (`null` for a rule without one: it covers every file).
    pub path_regex: Option<String>,
}

impl PlaintextFile {
    /// The sentence shown to the operator: what, where, what to do.
    pub fn message(&self) -> String {
        format!(
            "{} is plaintext but .sops.yaml:{} (path_regex {}) says it must be encrypted: encrypt it (`sops -e -i {}`), or remove it from git, or allow it with --allow '<glob>' if it holds no secret",
            self.path,
            self.rule_line,
            self.path_regex.as_deref().unwrap_or("<any file>"),
            self.path
        )
    }
}

/// The files of `files` that a rule of `config` covers, that carry no sops metadata and that
/// `allow` does not allow, in path order. A file a rule covers that cannot be read is reported
/// as plaintext too (nothing proves it is encrypted); a file that looks like sops but is damaged
/// is the re-key planner's to report, not this guard's.
pub fn find_plaintext(
    config: &SopsConfig,
    files: &FileList,
    allow: &AllowList,
) -> crate::Result<Vec<PlaintextFile>> {
    let mut found = Vec::new();
    for path in files {
        let Some(relative) = relative_path(config, path) else {
            continue;
        };
        if allow.allows(&relative).is_some() {
            continue;
        }
        let Ok((index, rule)) = config.rule_for(path) else {
            continue;
        };
        if is_sops_file(path) {
            continue;
        }
        found.push(PlaintextFile {
            path: relative,
            rule: index,
            rule_line: rule.line,
            path_regex: rule.path_regex.clone(),
        });
    }
    Ok(found)
}

/// `path` below the config's directory, `/`-separated; `None` outside it (sops' rules then see
/// an absolute path, which the guard does not judge).
fn relative_path(config: &SopsConfig, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(config.dir()).ok()?;
    let parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Some(parts.join("/"))
}

/// Whether `path` is a sops file: its text carries sops metadata and parses as one. A file that
/// looks like sops but does not parse for another reason counts as a sops file here (damaged,
/// not plaintext).
fn is_sops_file(path: &Path) -> bool {
    let Ok(bytes) = fs_err::read(path) else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return false;
    };
    if !hostage_rekey::carries_sops_metadata(text) {
        return false;
    }
    !matches!(
        SopsFile::parse(&bytes, None),
        Err(SopsError::NotSops { .. })
    )
}

#[cfg(test)]
mod tests {
    //! The guard on fixture repositories (plain directories, a `.sops.yaml` and files).

    // Fixtures: a panic with the value is the right failure.
    #![allow(clippy::unwrap_used)]

    use super::*;

    const CONFIG: &str = "creation_rules:\n  - path_regex: secrets/.*\n    age: age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq\n";

    fn repo(files: &[(&str, &str)]) -> (tempfile::TempDir, SopsConfig, FileList) {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join(".sops.yaml"), CONFIG).unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            fs_err::create_dir_all(path.parent().unwrap()).unwrap();
            fs_err::write(path, text).unwrap();
        }
        let config = SopsConfig::load(&dir.path().join(".sops.yaml")).unwrap();
        let list = hostage_rekey::walk(&[dir.path().to_owned()]).unwrap();
        (dir, config, list)
    }

    fn paths(found: &[PlaintextFile]) -> Vec<&str> {
        found.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn a_covered_file_without_sops_metadata_is_plaintext_and_names_its_rule() {
        let (_dir, config, list) = repo(&[
            ("secrets/db.yaml", "password: hunter2\n"),
            ("README.txt", "not covered by any rule\n"),
        ]);
        let found = find_plaintext(&config, &list, &AllowList::new(&[]).unwrap()).unwrap();
        assert_eq!(paths(&found), ["secrets/db.yaml"]);
        assert_eq!(found[0].rule, 0);
        assert_eq!(found[0].rule_line, 2);
        assert!(found[0].message().contains(".sops.yaml:2"));
    }

    #[test]
    fn binary_plaintext_under_a_rule_is_plaintext_too() {
        let dir_files = [("secrets/key.bin", "\u{0}\u{1}")];
        let (dir, config, _) = repo(&dir_files);
        fs_err::write(dir.path().join("secrets/key.bin"), [0xff, 0xfe, 0x00]).unwrap();
        let list = hostage_rekey::walk(&[dir.path().to_owned()]).unwrap();
        let found = find_plaintext(&config, &list, &AllowList::new(&[]).unwrap()).unwrap();
        assert_eq!(paths(&found), ["secrets/key.bin"]);
    }

    #[test]
    fn default_and_given_allow_patterns_leave_files_alone() {
        let (_dir, config, list) = repo(&[
            ("secrets/default.nix", "{ }\n"),
            ("secrets/db.yaml.template", "password: CHANGEME\n"),
            ("secrets/examples/a/b.yaml", "x: 1\n"),
            ("secrets/db.yaml", "password: hunter2\n"),
        ]);
        let found = find_plaintext(&config, &list, &AllowList::new(&[]).unwrap()).unwrap();
        assert_eq!(
            paths(&found),
            [
                "secrets/db.yaml",
                "secrets/db.yaml.template",
                "secrets/examples/a/b.yaml"
            ]
        );
        let allow =
            AllowList::new(&["*.template".to_owned(), "secrets/examples/**".to_owned()]).unwrap();
        let found = find_plaintext(&config, &list, &allow).unwrap();
        assert_eq!(paths(&found), ["secrets/db.yaml"]);
    }

    #[test]
    fn globs_stay_inside_a_component_unless_doubled() {
        let allow = AllowList::new(&["secrets/*.yaml".to_owned(), "a?.txt".to_owned()]).unwrap();
        assert!(allow.allows("secrets/x.yaml").is_some());
        assert!(allow.allows("secrets/host/x.yaml").is_none());
        assert!(allow.allows("deep/dir/ab.txt").is_some());
        assert!(allow.allows("deep/dir/abc.txt").is_none());
        // Regex metacharacters in a glob are literal.
        let allow = AllowList::new(&["x+(y).yaml".to_owned()]).unwrap();
        assert!(allow.allows("x+(y).yaml").is_some());
        assert!(allow.allows("xx(y).yaml").is_none());
        assert!(AllowList::new(&[String::new()]).is_err());
    }
}
