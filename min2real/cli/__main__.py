"""`python -m min2real.cli` (and `torchrun -m min2real.cli`): the `min2real` command."""

import sys

from min2real.cli import main

sys.exit(main())
