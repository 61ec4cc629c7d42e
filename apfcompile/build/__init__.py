"""Building datasets: the options, the plan, the per-input work, where it runs, the output.

- :mod:`.config`: :class:`~.config.DataConfig` (what decides the data: stored in the manifest and
  the resume fingerprint) and :class:`~.config.RunConfig` (how the run goes);
- :mod:`.plan`: inputs -> sample ids and shards, fixed before any pixel is read;
- :mod:`.samples`: one input -> its samples, in memory or out of core;
- :mod:`.executors`: in this process, a process pool or a Dask cluster, results in plan order;
- :mod:`.outputs`: the output location, checked before and tidied after;
- :mod:`.run`: :func:`~.run.compile_dataset`, all of the above.
"""
