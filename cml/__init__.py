"""cml: a sustainability forecaster for Community Managed Libraries."""

__version__ = "0.1.0"
