import sys

from igft.cli import main

sys.exit(main())
