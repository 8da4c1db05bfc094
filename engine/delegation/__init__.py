"""Delegation of tasks to HTTP AI job providers."""
