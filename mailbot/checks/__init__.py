"""Checks: small rule classes that judge a FormReading; configured by rules/*.toml."""
