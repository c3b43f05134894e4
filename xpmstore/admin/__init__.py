"""Every command of the CLI as a function (ls, show, why, du, get, rm, pin, gc, fsck, jobs, kill,
logs, experiments, table, push, pull, remote init), returning typed results."""
