"""Machinery shared by every scheduler: evaluation, result files, command-line helpers."""
