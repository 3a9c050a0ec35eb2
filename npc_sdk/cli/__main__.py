"""`python -m npc_sdk.cli`: the same as the `npc-sdk` command."""

import sys

from . import main

sys.exit(main())
