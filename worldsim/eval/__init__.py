"""Evaluation against MuJoCo: paired rollouts, metrics, probes, baselines and a report (issue 8).

Conventions used throughout this package:
- Frames from envs and predictors are uint8 arrays, batch first, **B T H W C** (C = 3, RGB); the model side of
  worldsim uses float `B T C H W` tensors and converts at its own boundary.
- `actions[:, t]` is the action applied between frame t and frame t + 1, so k context frames and a horizon of H
  new frames take k + H - 1 actions (A = 0 for scenes without actions).
- Pixel coordinates (u, v) follow `worldsim.sim.camera`: pixel (row i, column j) has its centre at (j + .5, i + .5).

Modules: `predictor` (the protocol and the baselines), `world_model` (the world model as a predictor), `paired`
(test episodes and paired rollouts), `parse` (the colour parser), `metrics` (image, object and Physics-IQ metrics),
`stats` (bootstrap intervals), `physics` (physics-law probes), `permanence` (object-permanence probes), `voe`
(violation of expectation), `consistency` (camera cuts, orbit 3D consistency, push persistence),
`adherence` (prompt adherence of text->video samples), `evaluate` (the `worldsim evaluate` command), `report`
(the HTML report), `tables` (Markdown tables for docs/results.md).

Nothing here imports training code or Lightning: a notebook scores a checkpoint without them. Metric definitions,
thresholds and perturbation sizes were fixed on MuJoCo data alone, before any model was scored (docs/metrics.md).
"""
