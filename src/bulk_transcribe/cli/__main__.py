"""`python -m bulk_transcribe.cli`: the same as the `bulk-transcribe` command."""

import sys

from . import main

sys.exit(main())
