"""`python -m engine.sim`: the simulated Claude Code."""

from engine.sim.main import main

raise SystemExit(main())
