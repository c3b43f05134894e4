"""Configs and their identity: fields, type checks, identifiers, input digests, params.json."""
