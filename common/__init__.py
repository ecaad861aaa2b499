"""What the chapter's seven scripts share: the runtime (command line, device, seeding, the run directory,
checkpoints, the one-line error exit) in `common.runtime`; MiniPacman, the vector envs and the rollout pieces.

Imported before torch (each script imports `common` first): OpenMP reads its settings once, when torch loads it.
Its worker threads then wait passively, sleeping instead of spinning, so a run with --threads 2 does not stall
when another process wants a core (docs/speed.md, threads: 2.5 to 4 times slower beside one busy process
otherwise). An OMP_WAIT_POLICY already set in the environment is left as it is."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from common.options import fast_help  # noqa: E402

fast_help()  # `python Chapter_14_<script>.py --help` answers here, before torch loads (common/options.py)
