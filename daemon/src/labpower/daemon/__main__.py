import sys

from labpower.daemon.main import main

sys.exit(main())
