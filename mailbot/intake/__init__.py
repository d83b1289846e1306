"""Intake: fetch raw mail over IMAP, parse MIME into InboundMessage, classify it."""
