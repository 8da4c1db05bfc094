"""The Textual console and the `cfo` command."""
