"""Screens of the console: configure, run view, runs list, and the small dialogs."""
