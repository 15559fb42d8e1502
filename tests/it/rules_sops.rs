//! Differential tests of the `.sops.yaml` rules engine against the real sops 3.11: for generated
//! configs and paths, the rule hostage picks is the rule sops picks (observed by `sops encrypt` of a
//! throwaway file and reading the recipients out of the result), and malformed files fail in both
//! with the same line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hostage_recipients::AgeRecipient;
use hostage_sops::rules::{RulesError, SopsConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What sops did for one file: the recipients of each key group, or its error text.
type SopsOutcome = Result<Vec<BTreeSet<String>>, String>;

/// Encrypts a throwaway JSON file at `file` with sops, config and cwd as given.
fn sops_encrypt(cwd: &Path, config: Option<&Path>, file: &Path) -> SopsOutcome {
    fs_err::create_dir_all(file.parent().expect("file has a parent")).expect("mkdir");
    fs_err::write(file, "{\"k\": \"v\"}\n").expect("write throwaway file");
    let mut args: Vec<String> = Vec::new();
    if let Some(config) = config {
        args.push("--config".into());
        args.push(config.display().to_string());
    }
    args.extend(
        ["encrypt", "--input-type", "json", "--output-type", "json"]
            .iter()
            .map(|s| s.to_string()),
    );
    args.push(file.display().to_string());
    let output = duct::cmd(hostage_tests::sops(), &args)
        .dir(cwd)
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .env_remove("SOPS_CONFIG")
        .env_remove("SOPS_AGE_RECIPIENTS")
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .expect("run sops");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("sops prints JSON");
    let recipients = |list: &serde_json::Value| -> BTreeSet<String> {
        list.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["recipient"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let sops = &json["sops"];
    Ok(match sops["key_groups"].as_array() {
        Some(groups) => groups.iter().map(|g| recipients(&g["age"])).collect(),
        None => vec![recipients(&sops["age"])],
    })
}

/// What hostage says for the same file.
fn hostage_pick(config: &SopsConfig, file: &Path) -> SopsOutcome {
    match config.rule_for(file) {
        Ok((_, rule)) => Ok(rule
            .key_groups
            .iter()
            .map(|g| g.iter().map(|e| e.recipient.clone()).collect())
            .collect()),
        Err(e) => Err(e.to_string()),
    }
}

fn recipient(i: u8) -> String {
    AgeRecipient::from_bytes([i.wrapping_mul(37).wrapping_add(11); 32]).to_string()
}

const REGEXES: &[&str] = &[
    "secrets/",
    "^secrets/",
    "secrets/.*\\.json$",
    "\\.json$",
    "prod",
    "^prod/",
    "hosts/web01/.*",
    ".*/dev/.*",
    "dev/",
    "^/",
    "outside",
    "a[bc]d",
    "(foo|bar)/",
    "^[^/]+\\.json$",
    "web0[12]",
];

const PATHS: &[&str] = &[
    "secrets/a.json",
    "prod/secrets/x.json",
    "hosts/web01/s.json",
    "hosts/web02/s.json",
    "dev/x.json",
    "x/dev/y.json",
    "abd.json",
    "foo/z.json",
    "top.json",
    "deep/er/still/prod.json",
];

#[test]
fn generated_configs_pick_the_same_rule_as_sops() {
    let mut rng = StdRng::seed_from_u64(0x5095);
    let mut compared = 0;
    for round in 0..6 {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path().join("repo");
        fs_err::create_dir_all(&repo).expect("mkdir");
        let rules = rng.gen_range(1..6);
        let mut text = String::from("creation_rules:\n");
        for i in 0..rules {
            let r = recipient((round * 10 + i) as u8);
            match rng.gen_range(0..10) {
                0 => text.push_str(&format!("  - age: {r}\n")),
                1 => text.push_str(&format!("  - filename_regex: secrets/.*\n    age: {r}\n")),
                _ => {
                    let re = REGEXES[rng.gen_range(0..REGEXES.len())];
                    text.push_str(&format!(
                        "  - path_regex: '{}'\n    age: {r}\n",
                        re.replace('\'', "''")
                    ));
                }
            }
        }
        let config_path = repo.join(".sops.yaml");
        fs_err::write(&config_path, &text).expect("write config");
        let config = SopsConfig::parse(&config_path, &text).expect("hostage parses");
        let mut files: Vec<PathBuf> = PATHS.iter().map(|p| repo.join(p)).collect();
        files.push(tmp.path().join("outside/secrets/o.json"));
        files.push(tmp.path().join("repo2/prod.json"));
        for file in files {
            let sops = sops_encrypt(&repo, Some(&config_path), &file);
            let ours = hostage_pick(&config, &file);
            match (&sops, &ours) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{}\nconfig:\n{text}", file.display()),
                (Err(a), Err(b)) => {
                    assert!(
                        a.contains("no matching creation rules") && b.contains("no creation rule"),
                        "{}: sops: {a}\nhostage: {b}",
                        file.display()
                    )
                }
                _ => panic!(
                    "{}: sops {sops:?}, hostage {ours:?}\nconfig:\n{text}",
                    file.display()
                ),
            }
            compared += 1;
        }
    }
    assert!(compared >= 60);
}

#[test]
fn anchors_merge_keys_flat_lists_and_key_groups_give_the_recipients_sops_uses() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path();
    let (a, b, c, d) = (recipient(1), recipient(2), recipient(3), recipient(4));
    let text = [
        "keys:".to_owned(),
        format!("  - &a {a}"),
        format!("  - &b {b}"),
        format!("  - &c {c}"),
        "common: &common".to_owned(),
        "  age: *a".to_owned(),
        "creation_rules:".to_owned(),
        "  - path_regex: merged/".to_owned(),
        "    <<: *common".to_owned(),
        "  - path_regex: flatlist/".to_owned(),
        "    age:".to_owned(),
        "      - *a".to_owned(),
        format!("      - {d}, {c}"),
        "  - path_regex: folded/".to_owned(),
        "    age: >-".to_owned(),
        format!("      {a},"),
        format!("      {b},"),
        "  - path_regex: groups/".to_owned(),
        "    shamir_threshold: 2".to_owned(),
        "    key_groups:".to_owned(),
        "      - age: [*a, *b, *a]".to_owned(),
        "      - age:".to_owned(),
        "          - *c".to_owned(),
        format!("          - {d}"),
        "  - path_regex: dup/".to_owned(),
        format!("    age: {a},{a}"),
        "  - path_regex: mergegroup/".to_owned(),
        "    key_groups:".to_owned(),
        "      - merge:".to_owned(),
        "          - age: [*b]".to_owned(),
        "        age: [*c, *b]".to_owned(),
        String::new(),
    ]
    .join("\n");
    let config_path = repo.join(".sops.yaml");
    fs_err::write(&config_path, &text).expect("write config");
    let config = SopsConfig::parse(&config_path, &text).expect("hostage parses");
    for dir in [
        "merged",
        "flatlist",
        "folded",
        "groups",
        "dup",
        "mergegroup",
    ] {
        let file = repo.join(dir).join("f.json");
        let sops = sops_encrypt(repo, Some(&config_path), &file);
        let ours = hostage_pick(&config, &file);
        assert_eq!(sops, ours, "{dir}");
    }
}

#[test]
fn sops_and_hostage_find_the_same_config_from_a_subdirectory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    let sub = repo.join("a/b");
    fs_err::create_dir_all(&sub).expect("mkdir");
    let r = recipient(9);
    fs_err::write(
        repo.join(".sops.yaml"),
        format!("creation_rules:\n  - path_regex: ^a/b/\n    age: {r}\n"),
    )
    .expect("write");
    // A .sops.yml closer to the cwd is ignored by both, with a warning from hostage.
    fs_err::write(sub.join(".sops.yml"), "creation_rules: []\n").expect("write");
    let found = SopsConfig::find(&sub, None, None).expect("found");
    assert_eq!(found.path, repo.join(".sops.yaml"));
    assert!(found
        .warning
        .as_deref()
        .is_some_and(|w| w.contains(".sops.yml")));
    let config = SopsConfig::load(&found.path).expect("parse");
    let file = sub.join("x.json");
    assert_eq!(
        sops_encrypt(&sub, None, &file),
        hostage_pick(&config, &file)
    );
    assert_eq!(hostage_pick(&config, &file), Ok(vec![BTreeSet::from([r])]));
}

/// The line sops reports in `yaml: line N: …`.
fn sops_error_line(stderr: &str) -> Option<usize> {
    let at = stderr.find("line ")?;
    stderr[at + 5..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn malformed_configs_fail_in_both_with_the_same_line() {
    let r = recipient(5);
    let cases = [
        format!("creation_rules:\n  - path_regex: x\n    age: {r}\n   bad: [unclosed\n"),
        format!("creation_rules:\n  - path_regex: x\n    age: \"{r}\n"),
        format!("creation_rules:\n  - path_regex: x\n    key_groups:\n      - age: {r}\n"),
        format!("creation_rules:\n  - path_regex: x\n    age: {r}\n    age: {r}\n"),
        format!("creation_rules:\n  - path_regex: x\n\tage: {r}\n"),
        "creation_rules:\n  - path_regex: x\n    shamir_threshold: two\n".to_string(),
    ];
    for text in cases {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config_path = tmp.path().join(".sops.yaml");
        fs_err::write(&config_path, &text).expect("write");
        let sops = sops_encrypt(tmp.path(), Some(&config_path), &tmp.path().join("x/f.json"));
        let Err(stderr) = sops else {
            panic!("sops accepted:\n{text}")
        };
        let ours = SopsConfig::parse(&config_path, &text);
        let line = match ours {
            Err(RulesError::Syntax { line, .. }) | Err(RulesError::Invalid { line, .. }) => line,
            other => panic!("hostage: {other:?} for\n{text}"),
        };
        let message = SopsConfig::parse(&config_path, &text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.starts_with(&format!("{}:{line}", config_path.display())),
            "{message}"
        );
        // For shape errors both name the offending line; for syntax errors yaml.v3 often names
        // the line where the enclosing block started, hostage the line of the problem itself.
        if let (Some(sops_line), Err(RulesError::Invalid { .. })) = (
            sops_error_line(&stderr),
            SopsConfig::parse(&config_path, &text),
        ) {
            assert_eq!(
                line, sops_line,
                "sops: {stderr}\nhostage: {message}\n{text}"
            );
        }
    }
}

#[test]
fn an_invalid_recipient_fails_the_files_its_rule_selects_in_both() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path();
    let good = recipient(6);
    let text = format!(
        "creation_rules:\n  - path_regex: bad/\n    age: age1notarecipient\n  - age: {good}\n"
    );
    let config_path = repo.join(".sops.yaml");
    fs_err::write(&config_path, &text).expect("write config");
    let config = SopsConfig::parse(&config_path, &text).expect("hostage parses");
    let bad = repo.join("bad/f.json");
    assert!(sops_encrypt(repo, Some(&config_path), &bad).is_err());
    assert!(matches!(
        config.rule_for(&bad),
        Err(RulesError::BadRecipient { line: 3, .. })
    ));
    let fine = repo.join("fine/f.json");
    assert_eq!(
        sops_encrypt(repo, Some(&config_path), &fine),
        hostage_pick(&config, &fine)
    );
}

#[test]
fn a_redefined_anchor_resolves_to_its_latest_definition_in_both() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path();
    let (first, second, other) = (recipient(21), recipient(22), recipient(23));
    let text = format!(
        "keys:\n  - &host {first}\n  - &host {second}\n  - &other {other}\ncreation_rules:\n  - key_groups:\n      - age:\n          - *host\n"
    );
    let config_path = repo.join(".sops.yaml");
    fs_err::write(&config_path, &text).expect("write config");
    let config = SopsConfig::parse(&config_path, &text).expect("hostage parses");
    let file = repo.join("f.json");
    let sops = sops_encrypt(repo, Some(&config_path), &file);
    assert_eq!(sops, Ok(vec![BTreeSet::from([second])]));
    assert_eq!(sops, hostage_pick(&config, &file));
    assert!(config
        .lints()
        .iter()
        .any(|l| l.kind == hostage_sops::rules::LintKind::RedefinedAnchor));
}

/// Edits in every list style mean to sops exactly what hostage reads back from them.
#[test]
fn edited_files_give_sops_the_recipients_hostage_reads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path();
    let (a, b, new) = (
        recipient(31),
        recipient(32),
        AgeRecipient::from_bytes([99; 32]),
    );
    let lines = [
        "keys:".to_owned(),
        format!("  - &alice {a}"),
        "creation_rules:".to_owned(),
        "  - path_regex: comma/".to_owned(),
        format!("    age: {a},{b}"),
        "  - path_regex: quoted/".to_owned(),
        format!("    age: \"{a}, {b}\""),
        "  - path_regex: folded/".to_owned(),
        "    age: >-".to_owned(),
        format!("      {a},"),
        format!("      {b}"),
        "  - path_regex: list/".to_owned(),
        "    age:".to_owned(),
        format!("    - {a}"),
        "  - path_regex: flow/".to_owned(),
        format!("    age: [*alice, {b}]"),
        "  - path_regex: alias/".to_owned(),
        "    age: *alice   # only alice".to_owned(),
        "  - path_regex: groups/".to_owned(),
        "    shamir_threshold: 2".to_owned(),
        "    key_groups:".to_owned(),
        format!("      - age: [{a}]"),
        "      - age:".to_owned(),
        format!("          - {b}"),
        String::new(),
    ];
    let text = lines.join("\n");
    let config_path = repo.join(".sops.yaml");
    let config = SopsConfig::parse(&config_path, &text).expect("hostage parses");
    let named = config.add_named_recipient("newhost", &new).expect("anchor");
    let edited = SopsConfig::parse(&config_path, &named.text)
        .expect("reparse")
        .add_recipient(&hostage_sops::rules::RuleSelector::All, &named.reference)
        .expect("add");
    fs_err::write(&config_path, &edited).expect("write config");
    let config = SopsConfig::parse(&config_path, &edited).expect("hostage parses the edit");
    for dir in [
        "comma", "quoted", "folded", "list", "flow", "alias", "groups",
    ] {
        let file = repo.join(dir).join("f.json");
        let sops = sops_encrypt(repo, Some(&config_path), &file);
        let ours = hostage_pick(&config, &file);
        assert_eq!(sops, ours, "{dir}:\n{edited}");
        let groups = ours.expect("rule found");
        assert!(groups.iter().all(|g| g.contains(&new.to_string())), "{dir}");
    }
}

/// sulibot's layout (recipients anchored by top-level keys of their own name, `age_key:
/// &age_key 'age1…'`): the new host's `web01: &web01 'age1…'` and its alias in a rule mean to
/// sops exactly what hostage reads, and the top-level key sops does not know is ignored by it.
#[test]
fn a_top_level_anchored_recipient_gives_sops_the_recipients_hostage_reads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path();
    let (a, new) = (recipient(41), AgeRecipient::from_bytes([98; 32]));
    let text = format!(
        "# .sops.yaml\nage_key: &age_key '{a}'\n\ncreation_rules:\n  - path_regex: '^hosts/web01/.*$'\n    age: *age_key\n  - path_regex: '.*\\.json$'\n    age: *age_key\n"
    );
    let config_path = repo.join(".sops.yaml");
    let config = SopsConfig::parse(&config_path, &text).expect("hostage parses");
    let named = config.add_named_recipient("web01", &new).expect("anchor");
    assert!(
        named.text.contains(&format!("web01: &web01 '{new}'\n")),
        "{}",
        named.text
    );
    let edited = SopsConfig::parse(&config_path, &named.text)
        .expect("reparse")
        .add_recipient(
            &hostage_sops::rules::RuleSelector::Indices(vec![0]),
            &named.reference,
        )
        .expect("add");
    fs_err::write(&config_path, &edited).expect("write config");
    let config = SopsConfig::parse(&config_path, &edited).expect("hostage parses the edit");
    for (file, readers) in [
        ("hosts/web01/f.json", vec![a.clone(), new.to_string()]),
        ("other/f.json", vec![a.clone()]),
    ] {
        let file = repo.join(file);
        let sops = sops_encrypt(repo, Some(&config_path), &file);
        assert_eq!(sops, hostage_pick(&config, &file), "{edited}");
        assert_eq!(
            sops,
            Ok(vec![readers.into_iter().collect::<BTreeSet<String>>()]),
            "{edited}"
        );
    }
}

/// The seed layout's edits (the golden files of `crates/sops/tests/rules/seed.*`: header labels,
/// flat comma strings, a `secrets/.*` catch-all) mean to sops exactly what hostage reads: the
/// onboarded host's rules, the new rule above the catch-all, the replaced key.
#[test]
fn seed_layout_edits_give_sops_the_recipients_hostage_reads() {
    let goldens = hostage_tests::workspace_root().join("crates/sops/tests/rules");
    let key = |n: u8| AgeRecipient::from_bytes([n; 32]).to_string();
    let (workstation, infrastructure, gnomeregan, stormwind, rotated) =
        (key(1), key(2), key(3), key(4), key(5));
    let cases = [
        (
            "seed.sops.yaml",
            "secrets/host/gnomeregan/x.sops.yaml",
            vec![&workstation, &infrastructure, &gnomeregan],
        ),
        (
            "seed.sops.yaml",
            "secrets/host/ironforge/db-storage.sops.yaml",
            vec![&workstation, &infrastructure, &gnomeregan],
        ),
        (
            "seed.sops.yaml",
            "secrets/workstation/x.sops.yaml",
            vec![&workstation],
        ),
        (
            "seed.new-rule.expected.yaml",
            "secrets/host/stormwind/ssh_host_ed25519_key.sops",
            vec![&workstation, &stormwind],
        ),
        (
            "seed.new-rule.expected.yaml",
            "secrets/host/gnomeregan/x.sops.yaml",
            vec![&workstation, &infrastructure, &gnomeregan],
        ),
        (
            "seed.replace.expected.yaml",
            "secrets/host/gnomeregan/x.sops.yaml",
            vec![&workstation, &infrastructure, &rotated],
        ),
    ];
    for (golden, file, expected) in cases {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path();
        let text = fs_err::read_to_string(goldens.join(golden)).expect("golden file");
        let config_path = repo.join(".sops.yaml");
        fs_err::write(&config_path, &text).expect("write config");
        let config = SopsConfig::parse(&config_path, &text).expect("hostage parses");
        let file = repo.join(file);
        let sops = sops_encrypt(repo, None, &file);
        assert_eq!(
            sops,
            hostage_pick(&config, &file),
            "{golden}: {}",
            file.display()
        );
        let expected: BTreeSet<String> = expected.into_iter().cloned().collect();
        assert_eq!(sops, Ok(vec![expected]), "{golden}: {}", file.display());
    }
}

/// A path a `path_regex` probably matches, made by undoing its common constructs (it need not
/// match: whatever it is, sops and hostage must agree on it).
fn sample_path(regex: &str) -> String {
    let mut s = regex
        .trim_start_matches('^')
        .trim_end_matches('$')
        .to_owned();
    for (from, to) in [
        ("(^|/)", ""),
        ("[^/]+", "x"),
        ("[^/]*", "x"),
        (".*", "x"),
        (".+", "x"),
        ("\\.", "."),
        ("\\/", "/"),
    ] {
        s = s.replace(from, to);
    }
    // `(a|b)` → `a`; `X?` → `X`; `[abc]` → `a`.
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '(' => {
                let mut depth = 1;
                let mut first = String::new();
                let mut in_first = true;
                for c in chars.by_ref() {
                    match c {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        '|' if depth == 1 => in_first = false,
                        _ if in_first => first.push(c),
                        _ => {}
                    }
                }
                out.push_str(&sample_path(&first));
            }
            '[' => {
                let mut first = None;
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    first.get_or_insert(c);
                }
                out.push(first.unwrap_or('x'));
            }
            '?' | '*' | '+' | '^' | '$' | '\\' => {}
            c => out.push(c),
        }
    }
    out.trim_start_matches('/').to_owned()
}

#[test]
#[ignore = "needs the real-world corpus: cargo xtask test runs it when present"]
fn corpus_files_pick_the_same_rules_as_sops_for_paths_built_from_their_regexes() {
    let files = hostage_tests::corpus_sops_yaml_files();
    let mut compared = 0;
    for source in files {
        let text = fs_err::read_to_string(&source).expect("read corpus file");
        // Cloud KMS keys would make sops reach for the network: keep to age and pgp files.
        if hostage_tests::uses_cloud_kms(&text) {
            continue;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path().join("repo");
        fs_err::create_dir_all(&repo).expect("mkdir");
        let config_path = repo.join(".sops.yaml");
        fs_err::write(&config_path, &text).expect("copy corpus file");
        let config = SopsConfig::parse(&config_path, &text).expect("hostage parses");
        let mut samples: Vec<String> = config
            .rules()
            .iter()
            .filter_map(|r| r.path_regex.as_deref().map(sample_path))
            .filter(|p| !p.is_empty() && !p.starts_with('/'))
            // A sample named like the config (from `\.sops\.yaml$`) would overwrite it, and one
            // ending in `/` (from `modules/relay/`) names a directory: encrypt a file the same
            // regex matches instead.
            .map(|p| match p.as_str() {
                ".sops.yaml" => format!("x{p}"),
                _ if p.ends_with('/') => format!("{p}x.yaml"),
                _ => p,
            })
            .collect();
        samples.push("unrelated/file.json".into());
        for sample in samples {
            let file = repo.join(&sample);
            let ours = hostage_pick(&config, &file);
            let has_other_keys = config
                .rule_for(&file)
                .map(|(_, r)| r.other_keys.iter().any(|g| !g.is_empty()))
                .unwrap_or(false);
            let sops = sops_encrypt(&repo, Some(&config_path), &file);
            if has_other_keys {
                // sops cannot encrypt to the pgp keys here; it must still have found a rule.
                if let Err(e) = &sops {
                    assert!(
                        !e.contains("no matching creation rules"),
                        "{}: {sample}: {e}",
                        source.display()
                    );
                }
                continue;
            }
            match (&sops, &ours) {
                // Both refuse: for the same reason, either no rule matches or the rule's
                // recipient is not a valid age recipient (corpus files with placeholder keys).
                (Err(a), Err(b)) => assert!(
                    (a.contains("no matching creation rules") && b.contains("no creation rule"))
                        || (a.contains("invalid recipient") && b.contains("invalid age recipient")),
                    "{}: {sample}: sops {a} / hostage {b}",
                    source.display()
                ),
                // sops picked a rule with no keys and could not make a data key for it: hostage
                // must have picked that keyless rule too.
                (Err(a), Ok(groups)) if a.contains("empty key group") => assert!(
                    groups.iter().all(|g| g.is_empty()),
                    "{}: {sample}: sops {a} / hostage {groups:?}",
                    source.display()
                ),
                _ => assert_eq!(sops, ours, "{}: {sample}", source.display()),
            }
            compared += 1;
        }
    }
    assert!(compared >= 20, "only {compared} comparisons");
}
