//! Taking a decommissioned host out of the inventory (`hostage offboard`) without disturbing
//! anything else in the file.

use std::str::FromStr as _;

use crate::{Inventory, InventoryError};

impl Inventory {
    /// Returns `text` (this inventory's file content) without `host`'s entry under `hosts:` (its
    /// pin goes with it). The result is parsed again and must hold every other host unchanged, so
    /// a bad edit can never be written. A host that is not there: `text` unchanged.
    pub fn without_host(&self, text: &str, host: &str) -> Result<String, InventoryError> {
        let invalid = |message: String| InventoryError::Invalid {
            path: self.path.clone(),
            line: 1,
            column: 1,
            message,
        };
        if self.host(host).is_none() {
            return Ok(text.to_owned());
        }
        let document = yaml_edit::Document::from_str(text)
            .map_err(|e| invalid(format!("cannot edit the inventory: {e}")))?;
        let hosts = document
            .as_mapping()
            .and_then(|root| root.get_mapping("hosts"))
            .ok_or_else(|| invalid("`hosts` is not a block mapping".to_owned()))?;
        if hosts.remove(host).is_none() {
            return Err(invalid(format!(
                "host `{host}` is not a key of the `hosts` mapping"
            )));
        }
        let edited = document.to_string();
        let reparsed = Inventory::parse(&self.path, &edited)?;
        // `Host` has no `PartialEq`; its `Debug` shows every field.
        let others: Vec<String> = self
            .hosts
            .iter()
            .filter(|h| h.name.as_str() != host)
            .map(|h| format!("{h:?}"))
            .collect();
        let kept: Vec<String> = reparsed.hosts.iter().map(|h| format!("{h:?}")).collect();
        if reparsed.host(host).is_some() || others != kept {
            return Err(invalid(format!(
                "removing `{host}` would change other hosts; remove its entry by hand"
            )));
        }
        Ok(edited)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_removed_host_takes_its_lines_and_nothing_else() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../inventory/fleet.yaml");
        let text = fs_err::read_to_string(&path).unwrap();
        let inventory = Inventory::parse(&path, &text).unwrap();
        let edited = inventory.without_host(&text, "gnomeregan").unwrap();
        let reparsed = Inventory::parse(&path, &edited).unwrap();
        assert!(reparsed.host("gnomeregan").is_none());
        assert_eq!(reparsed.hosts.len(), inventory.hosts.len() - 1);
        // Only gnomeregan's lines went.
        let removed: Vec<&str> = text
            .lines()
            .filter(|l| !edited.lines().any(|e| e == *l))
            .collect();
        assert!(
            removed.iter().any(|l| l.contains("gnomeregan:")),
            "{removed:?}"
        );
        assert!(
            removed.iter().all(|l| !l.contains("ironforge")),
            "{removed:?}\n{edited}"
        );
        assert!(edited.starts_with("# hostage inventory"), "comments stay");
        // Again: nothing to remove.
        assert_eq!(
            reparsed.without_host(&edited, "gnomeregan").unwrap(),
            edited
        );
    }
}
