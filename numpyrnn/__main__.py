"""``python -m numpyrnn`` is the ``numpyrnn`` command."""

import sys

from .cli import main

sys.exit(main())
