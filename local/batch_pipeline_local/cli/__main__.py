"""`python -m batch_pipeline_local.cli`: the `batch-pipeline` command."""

import sys

from batch_pipeline_local.cli.main import main

sys.exit(main())
