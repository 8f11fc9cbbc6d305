"""Re-rendering stored episodes from their physics state: the check that a store holds everything a frame needs.

For a worldsim scene, an episode's frames are a function of its stored `params` (sizes, colours, which objects
take part), each frame's `qpos`/`qvel` and its camera: this module rebuilds the model from `params`, sets the
state, and renders with the stored camera. `rerender(...) == episode["frames"]` is the store's self-check.
"""

from __future__ import annotations

import mujoco
import numpy as np

from worldsim.errors import StoreError


def rerender(store, split: str, index: int) -> np.ndarray:
    """(T, H, W, 3) frames of a committed episode, re-rendered from its stored state and cameras."""
    from worldsim.sim.registry import make
    from worldsim.sim.render import FrameRenderer

    a = store.attrs
    if a["source"] != "scene":
        raise StoreError("re-rendering needs a worldsim scene store (gymnasium envs keep state of their own)",
                         source=store.path, field="source")
    ep = store.episode(split, index, ["qpos", "qvel", "camera", "params"])
    h, w = a["resolution"]
    env = make(a["scene"], resolution=(h, w), frame_skip=a["frame_skip"], visibility=False)
    renderer = None
    try:
        env.reset(seed=0, options={"params": ep["params"]})  # rebuilds sizes, colours and active objects
        scene, model, data = env.scene, env.model, env.data
        renderer = FrameRenderer(scene, model, h, w)
        active = scene.active(ep["params"])
        out = np.empty((len(ep["qpos"]), h, w, 3), np.uint8)
        for t, (qpos, qvel, cam) in enumerate(zip(ep["qpos"], ep["qvel"], ep["camera"])):
            data.qpos[:], data.qvel[:] = qpos, qvel
            mujoco.mj_forward(model, data)
            cid = scene.camera_ids[a["cameras"][int(cam)]]
            out[t] = renderer.render(data, cid, active, visibility=False).rgb
        return out
    finally:
        if renderer is not None:
            renderer.close()
        env.close()
