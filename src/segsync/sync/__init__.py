"""Orchestrates pulls: connector pages → store, with cursors, deletions and quarantine."""

from segsync.sync.pull import PullResult, pull_source, reconcile_source

__all__ = ["PullResult", "pull_source", "reconcile_source"]
