import sys

from mcp_platform.cli import main

sys.exit(main())
