"""cyclevae: text VAEs without KL vanishing, built around the cyclical annealing schedule
of Fu et al. (NAACL 2019)."""

# The one place the version is written: pyproject.toml reads it (setuptools dynamic version).
__version__ = "0.1.0"

__all__ = ["__version__"]
