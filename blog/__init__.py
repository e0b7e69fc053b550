"""The engineering log: one operator's technical blog, served to readers and to agents."""

__version__ = "0.1.0"
