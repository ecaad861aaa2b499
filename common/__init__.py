"""What the chapter's seven scripts share: the runtime (command line, device, seeding, run directory,
checkpoints, the one-line error exit) in `common.runtime`; the environments and rollout pieces arrive with
the scripts that need them."""
