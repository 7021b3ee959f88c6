//! OCI runtime bundle builder (config.json from image config + pod options).
