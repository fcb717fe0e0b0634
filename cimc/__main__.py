# `python -m cimc` is the `cimc` command: cimc.search.cli runs `search` and hands every other
# command to cimc.cli (the program sits above the library; nothing in cimc imports this file).
import sys

from cimc.search.cli import main

sys.exit(main())
