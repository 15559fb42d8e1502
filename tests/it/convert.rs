//! `hostage convert` and `hostage identities` against the real oracles: OpenSSH's ssh-keygen,
//! Go age / age-keygen, and sops 3.11.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::str::FromStr as _;

use hostage_recipients::{parse_key_lines, AgeIdentity, AgeRecipient, OpenSshPrivateKey};
use hostage_tests::{hostage_bin, require, sops, SshKeyPair, AGE, AGE_KEYGEN, SSH_KEYGEN};
use tempfile::TempDir;

const MIC92_AGE: &str = "age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452";
const MIC92_SECRET: &str =
    "AGE-SECRET-KEY-1K3VN4N03PTHJWSJSCCMQCN33RY5FSKQPJ4KRRTG3JMQUYE0TUSEQEDH6V8";

fn vectors() -> PathBuf {
    hostage_tests::workspace_root().join("crates/recipients/tests/vectors/mic92")
}

fn hostage(args: &[&str], stdin: Option<&[u8]>, envs: &[(&str, &str)]) -> Output {
    hostage_tests::run_hostage(args, stdin, envs)
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn convert_private(key: &Path, passphrase: Option<&str>) -> String {
    let envs: Vec<(&str, &str)> = passphrase
        .map(|p| vec![("HOSTAGE_SSH_PASSPHRASE", p)])
        .unwrap_or_default();
    let out = hostage(
        &["convert", "--private", &key.display().to_string()],
        None,
        &envs,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_owned()
}

fn age_keygen_recipient(secret: &str) -> String {
    duct::cmd!(require(AGE_KEYGEN), "-y")
        .stdin_bytes(format!("{secret}\n"))
        .read()
        .expect("age-keygen -y accepts our identity")
}

#[test]
fn convert_prints_mic92_vectors() {
    let public = hostage(
        &[
            "convert",
            &vectors().join("id_ed25519.pub").display().to_string(),
        ],
        None,
        &[],
    );
    assert!(public.status.success(), "{}", stderr(&public));
    assert_eq!(
        stdout(&public),
        format!("{MIC92_AGE}  # joerg@turingmachine\n")
    );
    let private = hostage(
        &["convert", "--private", "-"],
        Some(include_bytes!(
            "../../crates/recipients/tests/vectors/mic92/id_ed25519"
        )),
        &[],
    );
    assert_eq!(
        stdout(&private),
        format!("{MIC92_SECRET}\n"),
        "{}",
        stderr(&private)
    );
}

#[test]
fn go_age_keygen_derives_our_recipient_from_our_converted_secret() {
    assert_eq!(age_keygen_recipient(MIC92_SECRET), MIC92_AGE);
    let dir = TempDir::new().unwrap();
    for (index, cipher) in [
        None,
        Some("aes256-ctr"),
        Some("aes128-ctr"),
        Some("aes256-cbc"),
        Some("aes256-gcm@openssh.com"),
        Some("chacha20-poly1305@openssh.com"),
    ]
    .into_iter()
    .enumerate()
    {
        let passphrase = if index == 0 { "" } else { "correct horse" };
        let pair = SshKeyPair::generate(dir.path(), &format!("key{index}"), passphrase, cipher);
        let secret = convert_private(&pair.private, Some(passphrase).filter(|p| !p.is_empty()));
        let out = hostage(&["convert", &pair.public.display().to_string()], None, &[]);
        let recipient = stdout(&out).split_whitespace().next().unwrap().to_owned();
        assert_eq!(
            age_keygen_recipient(&secret),
            recipient,
            "cipher {cipher:?}: Go age-keygen disagrees"
        );
    }
}

#[test]
fn fingerprints_match_ssh_keygen() {
    let dir = TempDir::new().unwrap();
    let pair = SshKeyPair::generate(dir.path(), "host", "", None);
    let ours = parse_key_lines(&pair.public_line())
        .remove(0)
        .unwrap()
        .key
        .fingerprint();
    let theirs = duct::cmd!(require(SSH_KEYGEN), "-l", "-f", &pair.public)
        .read()
        .unwrap();
    assert_eq!(theirs.split_whitespace().nth(1), Some(ours.as_str()));
}

fn identity_of(pair: &SshKeyPair) -> AgeIdentity {
    let text = fs_err::read_to_string(&pair.private).unwrap();
    OpenSshPrivateKey::parse(&text)
        .unwrap()
        .unlock(&mut ())
        .unwrap()
        .to_age_identity()
}

#[test]
fn go_age_file_for_our_recipient_decrypts_with_our_identity_and_back() {
    let dir = TempDir::new().unwrap();
    let pair = SshKeyPair::generate(dir.path(), "workstation", "", None);
    let identity = identity_of(&pair);
    let recipient = identity.recipient().to_string();
    let plaintext = b"the data key would be here".to_vec();

    // Go age encrypts to the recipient we derived from the public key; we decrypt.
    let ciphertext = duct::cmd!(require(AGE), "-a", "-r", &recipient)
        .stdin_bytes(plaintext.clone())
        .stdout_capture()
        .run()
        .unwrap()
        .stdout;
    let decryptor =
        age::Decryptor::new(age::armor::ArmoredReader::new(ciphertext.as_slice())).unwrap();
    let age_identity = identity.to_age();
    let mut reader = decryptor
        .decrypt(std::iter::once(&age_identity as &dyn age::Identity))
        .unwrap();
    let mut decrypted = Vec::new();
    reader.read_to_end(&mut decrypted).unwrap();
    assert_eq!(decrypted, plaintext);

    // We encrypt to it; Go age decrypts with the identity we converted (given on stdin, not on disk).
    let age_recipient = age::x25519::Recipient::from_str(&recipient).unwrap();
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&age_recipient as &dyn age::Recipient))
            .unwrap();
    let mut ciphertext = Vec::new();
    let mut writer = encryptor.wrap_output(&mut ciphertext).unwrap();
    writer.write_all(&plaintext).unwrap();
    writer.finish().unwrap();
    let encrypted = dir.path().join("for-go.age");
    fs_err::write(&encrypted, &ciphertext).unwrap();
    let decrypted = duct::cmd!(require(AGE), "-d", "-i", "/dev/stdin", &encrypted)
        .stdin_bytes(format!("{}\n", identity.to_secret_string().as_str()))
        .stdout_capture()
        .run()
        .unwrap()
        .stdout;
    assert_eq!(decrypted, plaintext);
}

#[test]
fn sops_encrypts_to_our_recipient_and_decrypts_with_our_converted_identity() {
    let dir = TempDir::new().unwrap();
    let pair = SshKeyPair::generate(dir.path(), "gnomeregan", "", None);
    let out = hostage(&["convert", &pair.public.display().to_string()], None, &[]);
    let recipient = stdout(&out).split_whitespace().next().unwrap().to_owned();
    AgeRecipient::parse(&recipient).unwrap();
    let secret = convert_private(&pair.private, None);

    let plain = dir.path().join("secrets.yaml");
    fs_err::write(&plain, "db_password: hunter2\nnested:\n    token: abc\n").unwrap();
    let encrypted = duct::cmd!(sops(), "encrypt", "--age", &recipient, &plain)
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .dir(dir.path())
        .read()
        .unwrap();
    assert!(encrypted.contains(&recipient));
    let encrypted_path = dir.path().join("secrets.enc.yaml");
    fs_err::write(&encrypted_path, &encrypted).unwrap();
    let decrypted = duct::cmd!(sops(), "decrypt", &encrypted_path)
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .env("SOPS_AGE_KEY", &secret)
        .env("HOME", dir.path())
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("XDG_CONFIG_HOME")
        .read()
        .unwrap();
    assert!(decrypted.contains("db_password: hunter2"), "{decrypted}");
}

#[test]
fn keyscan_output_is_labelled_and_rsa_lines_of_the_same_host_are_skipped() {
    let keyscan = "# gnomeregan:22 SSH-2.0-OpenSSH_9.8\r\n\
        gnomeregan ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7\r\n\
        gnomeregan ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOHz+U0YtjINc54dZiJNclfmEFifF7RXCFlNlTbuZBji\r\n";
    let out = hostage(&["convert"], Some(keyscan.as_bytes()), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{MIC92_AGE}  # gnomeregan\n"));
}

#[test]
fn bad_keys_fail_with_errors_that_say_what_to_do() {
    let cases: &[(&str, &str)] = &[
        (
            "ironforge ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7\n",
            "ed25519 keys only; this host has only ssh-rsa",
        ),
        (
            "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29t\n",
            "certificate",
        ),
        // y = 2 is no point on the curve.
        (
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
            "not a valid curve point",
        ),
        ("hello world\n", "not an OpenSSH public key line"),
    ];
    for (input, expected) in cases {
        let out = hostage(&["convert"], Some(input.as_bytes()), &[]);
        assert_eq!(out.status.code(), Some(1), "input {input:?}");
        assert!(
            stderr(&out).contains(expected),
            "input {input:?}: {}",
            stderr(&out)
        );
    }
    let empty = hostage(&["convert"], Some(b"# nothing here\n"), &[]);
    assert_eq!(empty.status.code(), Some(1));
    assert!(
        stderr(&empty).contains("no public key found"),
        "{}",
        stderr(&empty)
    );
}

#[test]
fn protected_key_without_passphrase_or_with_a_wrong_one_fails_without_leaking() {
    let dir = TempDir::new().unwrap();
    let pair = SshKeyPair::generate(dir.path(), "infra", "s3cret-pass", None);
    let key = pair.private.display().to_string();
    let none = hostage(&["convert", "--private", &key], None, &[]);
    assert_eq!(none.status.code(), Some(1));
    assert!(stderr(&none).contains("passphrase"), "{}", stderr(&none));
    let wrong = hostage(
        &["convert", "--private", &key],
        None,
        &[("HOSTAGE_SSH_PASSPHRASE", "nope")],
    );
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        stderr(&wrong).contains("wrong passphrase"),
        "{}",
        stderr(&wrong)
    );
    assert!(wrong.stdout.is_empty());

    let passphrase_file = dir.path().join("pass");
    fs_err::write(&passphrase_file, "s3cret-pass\n").unwrap();
    let ok = hostage(
        &[
            "convert",
            "--private",
            &key,
            "--passphrase-file",
            &passphrase_file.display().to_string(),
        ],
        None,
        &[],
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).starts_with("AGE-SECRET-KEY-1"));
    assert!(!stderr(&ok).contains("s3cret"));
}

#[test]
fn passphrase_is_not_accepted_on_the_command_line() {
    let out = hostage(
        &["convert", "--private", "--passphrase", "x", "-"],
        Some(b""),
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn ssh_ed25519_recipient_where_age_is_needed_is_explained() {
    let err =
        AgeRecipient::parse(&fs_err::read_to_string(vectors().join("id_ed25519.pub")).unwrap())
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("do not interoperate") && err.contains(MIC92_AGE),
        "{err}"
    );
}

#[test]
fn identities_lists_sources_and_converted_ssh_keys() {
    let home = TempDir::new().unwrap();
    fs_err::create_dir_all(home.path().join(".ssh")).unwrap();
    let pair = SshKeyPair::generate(&home.path().join(".ssh"), "id_ed25519", "pw", None);
    let expected = hostage(&["convert", &pair.public.display().to_string()], None, &[]);
    let converted = stdout(&expected)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let home_text = home.path().display().to_string();
    let out = hostage(
        &["--json", "identities"],
        None,
        &[
            ("HOME", &home_text),
            ("SOPS_AGE_KEY", MIC92_SECRET),
            ("XDG_CONFIG_HOME", &home_text),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let identities = json["identities"].as_array().unwrap();
    assert_eq!(identities.len(), 2, "{json}");
    assert_eq!(identities[0]["recipient"], converted.as_str());
    assert_eq!(identities[0]["passphrase_protected"], true);
    assert_eq!(identities[1]["recipient"], MIC92_AGE);
    assert_eq!(identities[1]["source"], "SOPS_AGE_KEY");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("AGE-SECRET-KEY"));

    let none = hostage(
        &["identities"],
        None,
        &[
            ("HOME", &home_text),
            ("SOPS_AGE_SSH_PRIVATE_KEY_FILE", "/nonexistent"),
        ],
    );
    assert_eq!(none.status.code(), Some(1));
    assert!(stderr(&none).contains("hint:"), "{}", stderr(&none));
}

#[test]
fn passphrase_is_asked_on_the_terminal_and_not_echoed() {
    let dir = TempDir::new().unwrap();
    let pair = SshKeyPair::generate(dir.path(), "laptop", "typed-at-tty", None);
    let expected = convert_private(&pair.private, Some("typed-at-tty"));
    // `script` gives hostage a real pseudo-terminal; what we type is what the operator types,
    // once the prompt is on the screen.
    let command = format!(
        "{} convert --private {}",
        hostage_bin().display(),
        pair.private.display()
    );
    let screen = hostage_tests::answer_on_terminal(
        &command,
        |script| {
            script
                .env_remove("HOSTAGE_SSH_PASSPHRASE")
                .env_remove("SSH_TO_AGE_PASSPHRASE");
        },
        "passphrase for SHA256:",
        "typed-at-tty",
    );
    let (_, after_prompt) = screen
        .split_once("passphrase for SHA256:")
        .unwrap_or_else(|| panic!("no prompt on the terminal: {screen}"));
    assert!(after_prompt.contains(&expected), "{screen}");
    assert!(
        !after_prompt.contains("typed-at-tty"),
        "the passphrase was echoed: {screen}"
    );
}
