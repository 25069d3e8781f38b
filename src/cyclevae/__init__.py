"""cyclevae: text VAEs without KL vanishing, built around the cyclical annealing schedule
of Fu et al. (NAACL 2019)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cyclevae")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
