"""A tqdm class passed as ``progress`` reaches the hub's snapshot download (the ComfyUI progress bar uses it)."""

import huggingface_hub
import tqdm

from marigold.core import checkpoint


def test_a_tqdm_class_is_handed_to_the_hub(monkeypatch, tmp_path):
    seen = {}

    def fake(repo_id, **kwargs):
        seen.update(kwargs, repo_id=repo_id)
        return str(tmp_path)

    class Bar(tqdm.tqdm):
        pass

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    assert checkpoint.download("prs-eth/marigold-depth-v1-1", tmp_path, progress=Bar) == tmp_path
    assert seen["tqdm_class"] is Bar and seen["repo_id"] == "prs-eth/marigold-depth-v1-1"
    seen.clear()
    checkpoint.download("prs-eth/marigold-depth-v1-1", tmp_path, progress=False)
    assert "tqdm_class" not in seen
