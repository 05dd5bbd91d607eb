import sys

from xborder_gateway._cli import main

sys.exit(main())
