"""A test-only callback, loaded into `worldsim fit` subprocesses by class path: each rank saves its raw weights."""

from pathlib import Path

import lightning as L
from safetensors.torch import save_file


class SaveRankWeights(L.Callback):
    def on_fit_end(self, trainer, pl_module) -> None:
        state = {k: v.detach().contiguous() for k, v in pl_module.net.state_dict().items()}
        save_file(state, str(Path(trainer.default_root_dir) / f"rank{trainer.global_rank}.safetensors"))
