//! Finding `.sops.yaml` and turning file paths into the strings sops matches `path_regex` against.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

use super::RulesError;

/// sops' search depth (`maxDepth` in `config/config.go`).
const MAX_DEPTH: usize = 100;

/// A `.sops.yaml` that was found, and what the user should hear about the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLocation {
    /// The config file.
    pub path: PathBuf,
    /// How it was chosen.
    pub source: ConfigSource,
    /// A warning to print, e.g. an ignored `.sops.yml` (sops 3.10+ warns the same way).
    pub warning: Option<String>,
}

/// How the config file was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// `--config PATH`.
    Explicit,
    /// The `SOPS_CONFIG` environment variable.
    Environment,
    /// Found in the start directory or a parent.
    Search,
}

impl super::SopsConfig {
    /// Finds the `.sops.yaml` sops would use: `explicit` (`--config`), else `env_sops_config`
    /// (`SOPS_CONFIG`), else `.sops.yaml` in `start_dir` (sops uses the current directory, not the
    /// file's) or its parents. A `.sops.yml` is ignored with a warning, as sops does.
    pub fn find(
        start_dir: &Path,
        explicit: Option<&Path>,
        env_sops_config: Option<&OsStr>,
    ) -> Result<ConfigLocation, RulesError> {
        if let Some(path) = explicit {
            return Ok(ConfigLocation {
                path: path.to_owned(),
                source: ConfigSource::Explicit,
                warning: None,
            });
        }
        if let Some(env) = env_sops_config.filter(|e| !e.is_empty()) {
            return Ok(ConfigLocation {
                path: PathBuf::from(env),
                source: ConfigSource::Environment,
                warning: None,
            });
        }
        let start = absolute(start_dir);
        let mut ignored: Option<PathBuf> = None;
        let mut dir = start.clone();
        for _ in 0..MAX_DEPTH {
            let candidate = dir.join(".sops.yaml");
            if candidate.exists() {
                let warning = ignored.as_ref().map(|alt| {
                    format!(
                        "ignoring {} when searching for config file; the config file must be called .sops.yaml; using {} instead",
                        alt.display(),
                        candidate.display()
                    )
                });
                return Ok(ConfigLocation {
                    path: candidate,
                    source: ConfigSource::Search,
                    warning,
                });
            }
            if ignored.is_none() {
                let alt = dir.join(".sops.yml");
                if alt.exists() {
                    ignored = Some(alt);
                }
            }
            match dir.parent() {
                Some(parent) => dir = parent.to_owned(),
                None => break,
            }
        }
        Err(RulesError::NotFound {
            start,
            ignored_yml: ignored,
        })
    }
}

/// An absolute, lexically cleaned path (Go's `filepath.Abs`: no symlink resolution).
pub(crate) fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    clean(&joined)
}

/// Go's `filepath.Clean` for absolute paths: drops `.`, resolves `..` lexically.
pub(crate) fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                // `/..` is `/`; a relative path keeps its leading `..`.
                if out == Path::new("/") {
                } else if out.as_os_str().is_empty() || out.ends_with("..") {
                    out.push("..");
                } else {
                    out.pop();
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// The string sops matches `path_regex` against: the file's absolute path with the config's
/// directory and a `/` trimmed off the front when it is below it, else the absolute path.
pub(crate) fn relative_to_config(config_dir: &Path, file: &Path) -> String {
    let file = absolute(file).to_string_lossy().into_owned();
    // Go: strings.TrimPrefix(file, configDir+"/"); for "/" that is "//", which never matches.
    let prefix = format!("{}/", config_dir.to_string_lossy());
    match file.strip_prefix(&prefix) {
        Some(rest) => rest.to_owned(),
        None => file,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_below_the_config_are_relative_and_others_absolute() {
        let dir = Path::new("/repo");
        assert_eq!(
            relative_to_config(dir, Path::new("/repo/secrets/a.yaml")),
            "secrets/a.yaml"
        );
        assert_eq!(
            relative_to_config(dir, Path::new("/repo/x/../b.yaml")),
            "b.yaml"
        );
        assert_eq!(
            relative_to_config(dir, Path::new("/repository/b.yaml")),
            "/repository/b.yaml"
        );
        assert_eq!(
            relative_to_config(dir, Path::new("/other/c.yaml")),
            "/other/c.yaml"
        );
        assert_eq!(
            relative_to_config(Path::new("/"), Path::new("/c.yaml")),
            "/c.yaml"
        );
    }

    #[test]
    fn clean_resolves_dots_lexically() {
        assert_eq!(clean(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(clean(Path::new("/../a")), PathBuf::from("/a"));
    }
}
