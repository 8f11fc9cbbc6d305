"""Nothing a user did not make is ever unpickled: a scan of the package's source for unsafe loaders."""

from __future__ import annotations

import re

from conftest import ROOT

UNSAFE = {
    r"\bpickle\.loads?\(": "pickle.load",
    r"\bcloudpickle\.loads?\(": "cloudpickle.load",
    r"\bdill\.loads?\(": "dill.load",
    r"\byaml\.load\((?![^)]*SafeLoader)": "yaml.load without SafeLoader",
    r"\byaml\.unsafe_load\(": "yaml.unsafe_load",
    r"\bnp\.load\([^)]*allow_pickle\s*=\s*True": "np.load(allow_pickle=True)",
    r"\btorch\.load\((?![^)]*weights_only\s*=\s*True)": "torch.load without weights_only=True",
    r"(?<![.\w])eval\(": "eval of a string",
}


def test_no_unsafe_loaders_in_the_package():
    hits = []
    for path in sorted((ROOT / "worldsim").rglob("*.py")):
        text = path.read_text()
        for pattern, what in UNSAFE.items():
            for m in re.finditer(pattern, text):
                line = text.count("\n", 0, m.start()) + 1
                hits.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert not hits, "unsafe loading:\n" + "\n".join(hits)


def test_the_scan_catches_what_it_should(tmp_path):
    """The patterns are not vacuous: each flags a line that uses the unsafe call and spares the safe form."""
    bad = ["pickle.load(f)", "yaml.load(s)", "torch.load(p)", "np.load(p, allow_pickle=True)"]
    bad.append("eval(text)")
    good = ["yaml.load(s, Loader=yaml.SafeLoader)", "torch.load(p, weights_only=True)", "yaml.safe_load(s)", "model.eval()"]
    flagged = lambda line: any(re.search(p, line) for p in UNSAFE)  # noqa: E731
    assert all(flagged(b) for b in bad) and not any(flagged(g) for g in good)
