"""``python -m dnas`` is the ``dnas`` command."""
import sys

from dnas.cli import main

sys.exit(main())
