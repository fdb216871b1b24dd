import sys

from pgportfolio.cli import main

sys.exit(main())
