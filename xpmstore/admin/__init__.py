"""The store's maintenance commands behind the CLI: ls, show, why, du, get, rm, gc, fsck, jobs."""
