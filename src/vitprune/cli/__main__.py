"""``python -m vitprune.cli`` (how torchrun starts it): the ``vitprune`` command."""

import sys

from vitprune.cli.main import main

sys.exit(main())
