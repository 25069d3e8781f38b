"""``python -m cyclevae`` (also what ``torchrun -m cyclevae`` runs)."""

import sys

from .cli import main

sys.exit(main())
