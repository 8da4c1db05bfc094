"""The simulated Claude Code used by the demo and the tests."""
