"""`python -m tether` is the same as the `tether` console script."""

from tether.cli import main

raise SystemExit(main())
