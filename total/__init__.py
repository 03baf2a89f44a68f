"""The study scripts: evaluate every scheduler, sweeps, tables, figures and the one-command reproductions."""
