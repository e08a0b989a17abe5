"""``python -m benchmarks --size S --json out.json``."""

from benchmarks.harness import main

raise SystemExit(main())
