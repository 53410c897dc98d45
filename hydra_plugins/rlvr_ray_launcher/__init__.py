"""A Hydra launcher that runs each job of an `rlvr train --multirun` sweep on a Ray cluster.

`hydra/launcher=rlvr_ray`: every job is one `rlvr train` process started by a Ray actor on the cluster,
joining that same cluster (`cluster.address`) for its own trainer and vLLM actors, with its own output
dir (Hydra's sweep dir / subdir) and W&B run (grouped by the sweep). See `config.RayLauncherConf`.
"""
