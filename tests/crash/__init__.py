"""Crash tests of the store: real processes killed with SIGKILL at random moments."""
