//! What the rules modules' unit tests share: two real recipients and a parser for fixture text.

use std::path::Path;

use super::SopsConfig;

/// A recipient (bech32-valid, so sops and age would take it too).
pub(super) const A: &str = "age1r4kkg3s6xc5md6auca6h4ke02aje60e3hawfxwgyxtqmhw07q4jq6tfs09";
/// Another.
pub(super) const B: &str = "age1uxww5u66u3hha25dwvwqjgmrsxvd6mmspv9yqfx37w24w0a8tvaqe4nq5p";

/// `text` as `/repo/.sops.yaml`; a fixture that does not parse is the test's bug.
pub(super) fn parse(text: &str) -> SopsConfig {
    SopsConfig::parse(Path::new("/repo/.sops.yaml"), text).expect("fixture parses")
}
