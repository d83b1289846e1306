"""Forms: the shipped application form, and reading a filled one back (fields + seal)."""
