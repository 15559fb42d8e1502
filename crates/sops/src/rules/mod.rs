//! `.sops.yaml` creation rules: find, parse and match exactly like sops 3.11, and edit losslessly.
