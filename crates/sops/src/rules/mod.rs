//! `.sops.yaml` creation rules: find, parse and match exactly like sops 3.11, and edit losslessly.
//!
//! - [`SopsConfig::find`] locates the file like sops (`--config`, `SOPS_CONFIG`, then the current
//!   directory and its parents; `.sops.yml` is ignored with a warning).
//! - [`SopsConfig::parse`] reads it with sops' semantics (anchors, aliases, merge keys, flat keys vs
//!   `key_groups`, comma-split strings, de-duplication) and keeps the source text.
//! - [`SopsConfig::rule_for`] picks the rule sops would (first match, unanchored regex against the
//!   path relative to the config's directory, absolute outside it).
//! - [`SopsConfig::lints`] reports what sops accepts silently but is probably a mistake.
//! - [`SopsConfig::recipient_names`] is the one naming model: anchors, header labels
//!   (`# name: age1…`) and names the caller supplies, with their conflicts.
//! - The edits ([`SopsConfig::add_named_recipient`], [`SopsConfig::unname_recipient`],
//!   [`SopsConfig::add_to_rules`], [`SopsConfig::remove_from_rules`], [`SopsConfig::add_rule`],
//!   [`SopsConfig::remove_rule`], [`SopsConfig::replace`]) follow the file's own conventions and
//!   return a [`ConfigEdit`]: the new text, re-read before it is returned, with every other byte
//!   unchanged, and the [`ConfigChange`]s in the file's terms. A refusal is
//!   [`RulesError::Edit`] and changes nothing.

mod change;
mod config;
mod edit;
mod error;
mod example;
#[cfg(test)]
mod fixtures;
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
