"""The adversarial suite: a generated corpus of malformed raw files and the runner that checks it."""
