"""Build the API documentation of every public ``cyclevae`` module from its docstrings (pdoc,
Google-style sections), with every warning an error (CI builds it: ``tests/test_docs.py``).

    pip install -e '.[docs]'       # pdoc (the integrations' pages also need their extras)
    python docs/build_api.py       # writes build/api/index.html
    python docs/build_api.py --out DIR
"""

from __future__ import annotations

import argparse
import pkgutil
import sys
import warnings
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "build" / "api"


def public_modules() -> list[str]:
    """``cyclevae`` and all its submodules, less private ones (``_x``) and ``__main__``.

    Listed explicitly because pdoc follows a package's ``__all__``, which names its API
    objects, not its submodules.
    """
    import cyclevae

    names = ["cyclevae"]
    for info in pkgutil.walk_packages(cyclevae.__path__, "cyclevae."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def build(out: Path) -> None:
    """Render the HTML pages into ``out``; any warning (an import failure, a docstring pdoc
    cannot convert) raises."""
    import pdoc
    import pdoc.render

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pdoc.render.configure(docformat="google", show_source=False, search=True)
        pdoc.pdoc(*public_modules(), output_directory=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    args = parser.parse_args(argv)
    build(args.out)
    print(args.out / "index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
