"""Recording simulation episodes into a zarr v3 store and reading them back (issue 4; contract: docs/data.md).

recorder.py  `worldsim record`: episodes -> store; RecordConfig, record()
store.py     the store: create, check on open, grow; EpisodeStore reads committed episodes
writer.py    writing an episode into its slot (frames chunks first, commit mark last), on a background thread
workers.py   spawned one-thread rendering processes, fed episode indices
schema.py    every array and attribute, with dtype, shape and meaning
claims.py    who writes which episodes (two writers on the same episodes are refused)
splits.py    splits, seeds, held-out combinations, explicit ranges
policies.py  action policies for collection
source.py    a worldsim scene or gymnasium MuJoCo env seen as a stream of per-frame records
rerender.py  frames re-rendered from stored state (the store's self-check)
inspect.py   `worldsim inspect`: summary, video export, contact sheet
"""
