"""Rollouts, planning and generation with exported world-model weights (issue 7; docs/rollout.md). Never imports
training code or Lightning: a notebook loads a weights file and rolls out with torch, MuJoCo and gymnasium only.

- `WorldModel.load(path)`: weights + denoiser + what they were trained for (checks, conversions).
- `WorldModelEnv`, `WorldModelVectorEnv`: the model as a gymnasium env (single and batched).
- `Rollout`, `rollout`, `RolloutConfig`: cached autoregressive rollouts with a sliding context window.
- `generate(model, mode, ...)`: t2v, i2v, extend forward/backward, loop, connect, edit, preview (+ multi-shot, CFG).
- `CEMPlanner`, `MuJoCoDynamics`, `WorldModelDynamics`, `run_episode`: planning `push` by imagination.
- `prompts.expand`, `prompts.parse_prompt`: prompts -> scene parameters and training-style captions.
- `generate_store`: batch generation into a zarr store, marked as generated.
- `load_predictor`: the evaluation's `Predictor` (worldsim evaluate --model FILE).
"""

from worldsim.rollout.autoregressive import Rollout, RolloutConfig, rollout
from worldsim.rollout.env import WorldModelEnv, WorldModelVectorEnv
from worldsim.rollout.generate import MODES, Generation, generate, mode_plan
from worldsim.rollout.model import WorldModel
from worldsim.rollout.planner import CEMConfig, CEMPlanner, MuJoCoDynamics, WorldModelDynamics, run_episode
from worldsim.rollout.predictor import WorldModelPredictor, load_predictor, reemergence_vs_window
from worldsim.rollout.prompts import expand, parse_prompt, vocabulary
from worldsim.rollout.to_store import generate_store

__all__ = ["CEMConfig", "CEMPlanner", "Generation", "MODES", "MuJoCoDynamics", "Rollout", "RolloutConfig",
           "WorldModel", "WorldModelDynamics", "WorldModelEnv", "WorldModelPredictor", "WorldModelVectorEnv",
           "expand", "generate", "generate_store", "load_predictor", "mode_plan", "parse_prompt",
           "reemergence_vs_window", "rollout", "run_episode", "vocabulary"]
