"""Unit tests of the foundation: configs, checks, identifiers, inputs, params.json, CLI."""
