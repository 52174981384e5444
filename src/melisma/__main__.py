import sys

from melisma.cli import main

sys.exit(main())
