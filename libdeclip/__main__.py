import sys

from libdeclip.cli import main

sys.exit(main())
