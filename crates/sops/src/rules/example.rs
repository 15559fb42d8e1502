//! A plausible file path a `path_regex` matches (`secrets/host/web01/.*` →
//! `secrets/host/web01/secret.sops.yaml`): a new rule is placed above the rule that catches such a
//! path today, and the conformance suite builds one path per corpus rule the same way.
//!
//! A small walk over the regex's own text, not a full regex generator: literals and escapes are
//! kept, `.*`/`.+` become a file-name-like word, a class its first member, a group its first
//! alternative, optional parts are left out. The candidate is always checked against the regex,
//! so a pattern the walk misreads yields `None`, never a wrong path.

use regex::Regex;

/// What a trailing `.*` becomes, most specific first (a catch-all like `.*\.yaml$` must still
/// catch the path).
const FILE_NAMES: &[&str] = &[
    "secret.sops.yaml",
    "secret.yaml",
    "secret.json",
    "secret.env",
    "secret",
];

/// A path `path_regex` matches, or `None` when the regex does not compile or the walk cannot
/// find one (then give a path yourself).
pub fn example_path(path_regex: &str) -> Option<String> {
    example_path_of(&Regex::new(path_regex).ok()?)
}

pub(crate) fn example_path_of(regex: &Regex) -> Option<String> {
    let chars: Vec<char> = regex.as_str().chars().collect();
    FILE_NAMES.iter().find_map(|tail| {
        let mut out = String::new();
        let mut i = 0;
        sample(&chars, &mut i, tail, &mut out)?;
        regex.is_match(&out).then_some(out)
    })
}

/// Writes a sample of the alternation starting at `chars[*i]` into `out`, up to the end or the
/// `)` closing the current group; only the first alternative is sampled.
fn sample(chars: &[char], i: &mut usize, tail: &str, out: &mut String) -> Option<()> {
    let mut skipping = false;
    while *i < chars.len() {
        let c = chars[*i];
        if c == ')' {
            return Some(());
        }
        if c == '|' {
            skipping = true;
            *i += 1;
            continue;
        }
        let mut piece = String::new();
        match c {
            '^' | '$' => {
                *i += 1;
                continue;
            }
            '\\' => {
                let e = *chars.get(*i + 1)?;
                *i += 2;
                match e {
                    'd' => piece.push('0'),
                    'w' => piece.push('x'),
                    e if e.is_ascii_punctuation() => piece.push(e),
                    _ => return None,
                }
            }
            '.' if matches!(chars.get(*i + 1), Some('*' | '+')) => {
                *i += 2;
                let at_end = chars[*i..].iter().all(|c| matches!(c, '$' | ')'));
                // `.*` stands for a whole word here, never nothing.
                piece.push_str(if at_end { tail } else { "secret" });
            }
            // A lone `.` is usually a dot the author did not escape (`secrets.yaml$`).
            '.' => {
                piece.push('.');
                *i += 1;
            }
            '[' => {
                let negated = chars.get(*i + 1) == Some(&'^');
                let first = chars.get(*i + 1 + usize::from(negated)).copied()?;
                let end = chars[*i + 1..].iter().skip(1).position(|c| *c == ']')? + *i + 2;
                piece.push(if negated || first == '\\' { 'x' } else { first });
                *i = end + 1;
            }
            '(' => {
                *i += 1;
                if chars.get(*i) == Some(&'?') {
                    // (?:…) and flags: skip to the ':' (flags-only groups are not sampled).
                    let colon = chars[*i..].iter().position(|c| *c == ':')?;
                    *i += colon + 1;
                }
                sample(chars, i, tail, &mut piece)?;
                if chars.get(*i) != Some(&')') {
                    return None;
                }
                *i += 1;
            }
            '*' | '+' | '?' | '{' => return None,
            c => {
                piece.push(c);
                *i += 1;
            }
        }
        // A quantifier on the piece: optional parts are left out, repeated ones written once.
        match chars.get(*i) {
            Some('?' | '*') => {
                *i += 1;
                piece.clear();
            }
            Some('+') => *i += 1,
            Some('{') => {
                let close = chars[*i..].iter().position(|c| *c == '}')? + *i;
                let min: String = chars[*i + 1..close]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                let min: usize = min.parse().ok()?;
                piece = piece.repeat(min.min(8));
                *i = close + 1;
            }
            _ => {}
        }
        if !skipping {
            out.push_str(&piece);
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_paths_follow_the_regex() {
        let cases = [
            (
                "secrets/host/web01/.*",
                "secrets/host/web01/secret.sops.yaml",
            ),
            ("^secrets/web\\.d/.*\\.json$", "secrets/web.d/secret.json"),
            ("secrets/hosts?/x", "secrets/host/x"),
            (".*\\.yaml$", "secret.yaml"),
            (
                "secrets/host/ironforge/.*-storage\\.sops\\.yaml",
                "secrets/host/ironforge/secret-storage.sops.yaml",
            ),
            ("(dev|prod)/[a-z]+/.*\\.ya?ml$", "dev/a/secret.yml"),
            (
                "^k8s/(?:apps|infra)/.+\\.sops\\.ya?ml",
                "k8s/apps/secret.sops.yml",
            ),
            (".*", "secret.sops.yaml"),
            ("secrets.yaml$", "secrets.yaml"),
            ("secrets/[^/]+.caliban", "secrets/x.caliban"),
            (
                "hosts/asako/zrepl/.*\\.(crt|key)$",
                "hosts/asako/zrepl/secret.crt",
            ),
        ];
        for (regex, expected) in cases {
            assert_eq!(example_path(regex).as_deref(), Some(expected), "{regex}");
        }
        assert_eq!(example_path("(["), None);
    }

    #[test]
    fn hostile_regexes_give_no_path_instead_of_hanging_or_overflowing() {
        let deep = format!("{}a{}", "(".repeat(200), ")".repeat(200));
        let huge = "a{99999999999999999999}/.*".to_owned();
        let wide = format!("x{{{}}}", 1_000_000);
        for regex in [
            deep.as_str(),
            huge.as_str(),
            wide.as_str(),
            "\\",
            "[",
            "a|",
            "(?i)x",
        ] {
            if let Some(path) = example_path(regex) {
                assert!(path.len() < 1_000, "{regex}: {} bytes", path.len());
                assert!(
                    Regex::new(regex).is_ok_and(|r| r.is_match(&path)),
                    "{regex}"
                );
            }
        }
    }
}
