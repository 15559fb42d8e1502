//! `.sops.yaml` creation rules: find, parse and match exactly like sops 3.11, and edit losslessly.
//!
//! - [`SopsConfig::find`] locates the file like sops (`--config`, `SOPS_CONFIG`, then the current
//!   directory and its parents; `.sops.yml` is ignored with a warning).
//! - [`SopsConfig::parse`] reads it with sops' semantics (anchors, aliases, merge keys, flat keys vs
//!   `key_groups`, comma-split strings, de-duplication) and keeps the source text.
//! - [`SopsConfig::rule_for`] picks the rule sops would (first match, unanchored regex against the
//!   path relative to the config's directory, absolute outside it).
//! - [`SopsConfig::lints`] reports what sops accepts silently but is probably a mistake.
//! - The edit operations (`add_named_recipient`, `add_recipient`, `remove_recipient`,
//!   `add_path_rule`, `replace_recipient`) return the new text with every other byte unchanged.

mod change;
mod config;
mod edit;
mod error;
mod example;
mod lint;
mod names_edit;
mod naming;
mod new_rule;
mod paths;
mod replace;
mod tree;

pub use change::{ConfigChange, ConfigEdit};
pub use config::{CreationRule, OtherKey, RecipientEntry, RecipientKind, SopsConfig};
pub use edit::{NamedRecipient, RecipientRef, RuleSelector};
pub use error::RulesError;
pub use example::example_path;
pub use lint::{Lint, LintKind};
pub use naming::{HeaderLabel, NameSource, RecipientName, RecipientNames, SuppliedName};
pub use new_rule::NewRuleOptions;
pub use paths::{ConfigLocation, ConfigSource};
