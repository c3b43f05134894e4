"""Property tests (hypothesis) of the identifier encoding."""
