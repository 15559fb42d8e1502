//! Writing host-key pins back into the inventory without disturbing anything else in the file.

use std::str::FromStr as _;

use crate::{Inventory, InventoryError, Pin};

impl Inventory {
    /// Returns `text` (this inventory's file content) with `host`'s pin set to `pin`: the `pin:`
    /// block is replaced or added, every other byte (comments, order, spacing) stays as it was.
    /// The result is parsed again before it is returned, so a bad edit can never be written.
    pub fn with_pin(&self, text: &str, host: &str, pin: &Pin) -> Result<String, InventoryError> {
        let invalid = |message: String| InventoryError::Invalid {
            path: self.path.clone(),
            line: 1,
            column: 1,
            message,
        };
        let document = yaml_edit::Document::from_str(text)
            .map_err(|e| invalid(format!("cannot edit the inventory: {e}")))?;
        let entry = document
            .as_mapping()
            .and_then(|root| root.get_mapping("hosts"))
            .and_then(|hosts| hosts.get_mapping(host))
            .ok_or_else(|| {
                invalid(format!(
                    "host `{host}` is not a block mapping under `hosts`"
                ))
            })?;
        // RFC 3339 times are quoted so that no YAML 1.1 reader takes them for timestamps.
        let snippet = format!(
            "fingerprint: {}\nrecipient: {}\nverified: \"{}\"\n",
            pin.fingerprint, pin.recipient, pin.verified
        );
        let pin_document = yaml_edit::Document::from_str(&snippet)
            .map_err(|e| invalid(format!("cannot build the pin: {e}")))?;
        let pin_mapping = pin_document
            .as_mapping()
            .ok_or_else(|| invalid("cannot build the pin".to_owned()))?;
        entry.set("pin", pin_mapping);
        let edited = document.to_string();
        let reparsed = Inventory::parse(&self.path, &edited)?;
        if reparsed.host(host).and_then(|h| h.pin.as_ref()) != Some(pin) {
            return Err(invalid(format!(
                "the edited pin of `{host}` does not read back"
            )));
        }
        Ok(edited)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use hostage_recipients::AgeRecipient;

    use super::*;

    fn example() -> (Inventory, String) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../inventory/fleet.yaml");
        let text = fs_err::read_to_string(&path).unwrap();
        (Inventory::parse(&path, &text).unwrap(), text)
    }

    fn pin() -> Pin {
        Pin {
            fingerprint: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                .to_owned()
                .try_into()
                .unwrap(),
            recipient: AgeRecipient::parse(
                "age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452",
            )
            .unwrap(),
            verified: "2026-12-01T00:00:00Z".to_owned(),
        }
    }

    #[test]
    fn adding_a_pin_only_adds_its_lines() {
        let (inventory, text) = example();
        let edited = inventory.with_pin(&text, "ironforge", &pin()).unwrap();
        let inserted = "    pin:\n      fingerprint: SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n      recipient: age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452\n      verified: \"2026-12-01T00:00:00Z\"\n";
        assert!(edited.contains(inserted), "{edited}");
        assert_eq!(edited.replacen(inserted, "", 1), text);
    }

    #[test]
    fn replacing_a_pin_keeps_every_other_byte() {
        let (inventory, text) = example();
        let edited = inventory.with_pin(&text, "gnomeregan", &pin()).unwrap();
        let before: Vec<_> = text.lines().collect();
        let after: Vec<_> = edited.lines().collect();
        assert_eq!(before.len(), after.len());
        let changed: Vec<_> = before
            .iter()
            .zip(&after)
            .filter(|(a, b)| a != b)
            .map(|(_, b)| b.trim())
            .collect();
        assert_eq!(
            changed,
            [
                "fingerprint: SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "recipient: age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452",
                "verified: \"2026-12-01T00:00:00Z\"",
            ]
        );
    }
}
