import sys

from deploy.chaos.run import main

sys.exit(main())
