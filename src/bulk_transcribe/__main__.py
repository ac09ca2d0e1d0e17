"""`python -m bulk_transcribe`: the same as the `bulk-transcribe` command."""

import sys

from .cli import main

sys.exit(main())
