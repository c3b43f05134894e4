"""The test suite of xpmstore (a package, so that test modules never clash by name)."""
