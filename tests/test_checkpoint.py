"""Loading: layouts, variants, the empty-text cache, downloads by repo id (offline), and clear refusals."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import marigold
from marigold.compat import diffusers_dtype_kwarg
from marigold.core import checkpoint


def test_loads_every_task_and_scheduler(make_checkpoint):
    expected = {"depth": ("depth", "DDIMScheduler"), "lcm": ("depth", "LCMScheduler"),
                "depth-leading": ("depth", "DDIMScheduler"), "normals": ("normals", "DDIMScheduler"),
                "iid-appearance": ("intrinsics", "DDIMScheduler"), "iid-lighting": ("intrinsics", "DDIMScheduler")}
    for name, (task, sched) in expected.items():
        m = marigold.load(make_checkpoint(name), device="cpu", dtype="fp32", progress=False)
        assert m.task == task
        assert type(m.make_scheduler()).__name__ == sched
        assert m.make_scheduler().config.prediction_type == "v_prediction"
        assert m.unet.config.in_channels == 4 * (1 + m.n_targets)
    lighting = marigold.load(make_checkpoint("iid-lighting"), device="cpu", dtype="fp32", progress=False)
    assert lighting.target_names == ["albedo", "shading", "residual"]
    leading = marigold.load(make_checkpoint("depth-leading"), device="cpu", dtype="fp32", progress=False)
    assert leading.default_denoising_steps == 10 and leading.scheduler_config["timestep_spacing"] == "leading"


def test_reads_pipeline_config(depth_checkpoint):
    m = marigold.load(depth_checkpoint, device="cpu", dtype="fp32", progress=False)
    assert (m.default_denoising_steps, m.default_processing_resolution) == (1, 768)
    assert m.scale_invariant and m.shift_invariant and m.prediction_type == "depth"


def test_fp16_variant_files_load_and_cast(make_checkpoint, tmp_path):
    src = make_checkpoint("depth-fp16")
    folder = shutil.copytree(src, tmp_path / "variant")
    for part in ("unet", "vae"):  # what a download of the fp16 variant holds: only *.fp16.safetensors
        f = folder / part / "diffusion_pytorch_model.safetensors"
        f.rename(folder / part / "diffusion_pytorch_model.fp16.safetensors")
    (folder / "text_encoder" / "model.safetensors").rename(folder / "text_encoder" / "model.fp16.safetensors")
    (folder / checkpoint.EMBEDDING_FILE).unlink(missing_ok=True)
    m = marigold.load(folder, device="cpu", dtype="bf16", progress=False)
    assert m.unet.dtype == torch.bfloat16 and m.vae.dtype == torch.bfloat16
    m32 = marigold.load(folder, device="cpu", dtype="fp32", progress=False)
    assert m32.unet.dtype == torch.float32


def test_empty_text_embedding_is_cached_and_text_encoder_never_kept(make_checkpoint, tmp_path):
    folder = make_checkpoint("depth", copy_to=tmp_path / "ck")
    m = marigold.load(folder, device="cpu", dtype="fp32", progress=False)
    cache = folder / checkpoint.EMBEDDING_FILE
    assert cache.is_file()
    assert m.empty_text_embedding.shape == (1, 2, 32)
    assert not any(isinstance(v, torch.nn.Module) and "Text" in type(v).__name__ for v in vars(m).values())
    # with the cache present, the text encoder and tokenizer are not needed any more
    shutil.rmtree(folder / "text_encoder")
    shutil.rmtree(folder / "tokenizer")
    again = marigold.load(folder, device="cpu", dtype="fp32", progress=False)
    assert torch.equal(again.empty_text_embedding, m.empty_text_embedding)


def test_first_run_on_a_checkpoint_gives_the_same_depth_as_later_runs(make_checkpoint, tmp_path):
    """The run that computes the embedding and the runs that read its cache agree bit for bit. They did not
    (~1e-6, up to 1 LSB in 16-bit files): safetensors hands back the cached tensor 8 bytes off a 64-byte boundary,
    and the CPU kernels of the cross-attention sum in another order on misaligned input."""
    folder = make_checkpoint("depth", copy_to=tmp_path / "ck")
    (folder / checkpoint.EMBEDDING_FILE).unlink(missing_ok=True)
    image = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(0))
    first = marigold.load(folder, device="cpu", dtype="fp32", progress=False)
    later = marigold.load(folder, device="cpu", dtype="fp32", progress=False)
    assert (folder / checkpoint.EMBEDDING_FILE).is_file()
    a, b = (marigold.predict_depth(m, image, num_inference_steps=1, seed=0).prediction for m in (first, later))
    assert torch.equal(a, b)
    assert later.empty_text_embedding.data_ptr() % 64 == 0


def test_embedding_matches_diffusers(depth_checkpoint):
    from diffusers import MarigoldDepthPipeline

    pipe = MarigoldDepthPipeline.from_pretrained(str(depth_checkpoint), **{diffusers_dtype_kwarg(): torch.float32})
    ids = pipe.tokenizer("", padding="do_not_pad", max_length=pipe.tokenizer.model_max_length, truncation=True,
                         return_tensors="pt").input_ids
    with torch.no_grad():
        expected = pipe.text_encoder(ids)[0]
    assert torch.allclose(marigold.empty_text_embedding(depth_checkpoint), expected, atol=1e-6)


def test_read_only_checkpoint_caches_embedding_in_cache_dir(make_checkpoint, tmp_path):
    folder = make_checkpoint("depth", copy_to=tmp_path / "ro")
    (folder / checkpoint.EMBEDDING_FILE).unlink(missing_ok=True)
    os.chmod(folder, 0o555)
    try:
        if os.access(folder, os.W_OK):  # running as root: permissions don't bind; use a non-writable file
            os.chmod(folder, 0o755)
            (folder / checkpoint.EMBEDDING_FILE).mkdir()  # a directory where the file would go
        emb = marigold.empty_text_embedding(folder, cache_dir=tmp_path / "cache")
    finally:
        os.chmod(folder, 0o755)
    assert emb.shape == (1, 2, 32)
    assert list((tmp_path / "cache" / "embeddings").glob("*.safetensors"))


def _fake_hub_cache(src: Path, cache: Path, repo_id: str) -> Path:
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<rev>/...}."""
    base = cache / f"models--{repo_id.replace('/', '--')}"
    rev = "0123456789abcdef0123456789abcdef01234567"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(rev)
    shutil.copytree(src, base / "snapshots" / rev)
    return base / "snapshots" / rev


def test_repo_id_resolves_from_cache_offline(depth_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snap = _fake_hub_cache(depth_checkpoint, tmp_path / "hub", "prs-eth/marigold-depth-v1-1")
    m = marigold.load("prs-eth/marigold-depth-v1-1", cache_dir=tmp_path / "hub", device="cpu", dtype="fp32",
                      progress=False)
    assert m.path == snap and m.task == "depth"


def test_repo_id_offline_and_missing_says_where_to_put_files(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(marigold.CheckpointError) as e:
        marigold.load("prs-eth/marigold-depth-v1-1", cache_dir=tmp_path / "empty", progress=False)
    msg = str(e.value)
    assert "HF_HUB_OFFLINE" in msg and str(tmp_path / "empty") in msg and "folder" in msg


def test_missing_file_is_named(make_checkpoint, tmp_path):
    folder = make_checkpoint("depth", copy_to=tmp_path / "missing")
    (folder / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(marigold.CheckpointError, match="vae.*no weights"):
        marigold.load(folder, device="cpu", dtype="fp32", progress=False)
    shutil.rmtree(folder / "scheduler")
    with pytest.raises(marigold.CheckpointError, match="scheduler_config.json is missing"):
        marigold.load(folder, progress=False)


def test_half_downloaded_weights_are_detected(make_checkpoint, tmp_path):
    folder = make_checkpoint("depth", copy_to=tmp_path / "half")
    f = folder / "unet" / "diffusion_pytorch_model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(marigold.CheckpointError, match="truncated.*download"):
        marigold.load(folder, device="cpu", dtype="fp32", progress=False)
    f.write_bytes(b"")
    with pytest.raises(marigold.CheckpointError, match="not a valid safetensors"):
        marigold.load(folder, device="cpu", dtype="fp32", progress=False)


def test_pickle_only_weights_are_refused(make_checkpoint, tmp_path):
    folder = make_checkpoint("depth", copy_to=tmp_path / "pickle")
    f = folder / "unet" / "diffusion_pytorch_model.safetensors"
    f.rename(folder / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(marigold.CheckpointError, match="pickle"):
        marigold.load(folder, device="cpu", dtype="fp32", progress=False)


def test_stable_diffusion_unet_is_refused_with_a_hint(make_checkpoint, tmp_path):
    folder = make_checkpoint("depth", copy_to=tmp_path / "sd")
    cfg = json.loads((folder / "unet" / "config.json").read_text())
    cfg["in_channels"] = 4
    (folder / "unet" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(marigold.CheckpointError, match="4 input channels.*Stable Diffusion.*train.finetune"):
        marigold.load(folder, progress=False)
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionPipeline"
    index.pop("prediction_type")
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(marigold.CheckpointError, match="not a Marigold one"):
        marigold.load(folder, progress=False)


@pytest.mark.parametrize("source", ["/nonexistent/folder", "not a repo id at all", "a/b/c"])
def test_unknown_source(source):
    with pytest.raises(marigold.CheckpointError):
        marigold.load(source, progress=False)


def test_wrong_task_for_predict_depth(make_checkpoint):
    m = marigold.load(make_checkpoint("normals"), device="cpu", dtype="fp32", progress=False)
    with pytest.raises(marigold.InputError, match="normals checkpoint"):
        marigold.predict_depth(m, torch.rand(1, 3, 16, 16))


def test_auto_dtype_never_fp16_on_cpu():
    from marigold.core.devices import resolve_dtype

    assert resolve_dtype("auto", torch.device("cpu")) in (torch.float32, torch.bfloat16)
    with pytest.raises(marigold.InputError):
        resolve_dtype("fp8", torch.device("cpu"))


def test_rollingdepth_layout_loads_as_a_video_depth_model(make_checkpoint):
    """prs-eth/rollingdepth-v1-0's layout: model_index names RollingDepthPipeline and no Marigold keys."""
    from marigold.core.snippet import snippet_attention_enabled

    folder = make_checkpoint("rollingdepth")
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "RollingDepthPipeline" and "prediction_type" not in index
    info = marigold.inspect(folder)
    assert info["task"] == "depth" and info["video_model"]
    m = marigold.load(folder, device="cpu", dtype="fp32", progress=False)
    assert (m.task, m.prediction_type, m.video_model) == ("depth", "disparity", True)
    assert (m.default_denoising_steps, m.default_processing_resolution) == (1, 768)
    sched = m.make_scheduler()
    sched.set_timesteps(m.default_denoising_steps)
    assert sched.timesteps.tolist() == [999]  # one step from t = 999, as the reference runs it
    assert snippet_attention_enabled(m.unet)
    plain = marigold.load(make_checkpoint("depth"), device="cpu", dtype="fp32", progress=False)
    assert not plain.video_model and not snippet_attention_enabled(plain.unet)
    assert "prs-eth/rollingdepth-v1-0" in marigold.PUBLISHED


def test_offline_message_names_the_installed_hub_command(tmp_path, monkeypatch):
    from importlib.metadata import version

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(marigold.CheckpointError) as e:
        marigold.load("prs-eth/marigold-depth-v1-1", cache_dir=tmp_path / "empty", progress=False)
    major, minor = (int(x) for x in version("huggingface_hub").split(".")[:2])
    want = "hf download" if (major, minor) >= (0, 34) else "huggingface-cli download"
    assert f"{want} prs-eth/marigold-depth-v1-1" in str(e.value)
    if want == "hf download":
        assert "huggingface-cli" not in str(e.value)


def test_text_encoder_runs_before_the_unet_and_vae_are_read(make_checkpoint, tmp_path, monkeypatch):
    """First run on a new checkpoint: the encoder must be loaded and freed before any UNet/VAE weight is read,
    so that the three are never in memory together (the first run's peak RSS is then that of later runs)."""
    folder = make_checkpoint("depth", copy_to=tmp_path / "fresh")
    (folder / checkpoint.EMBEDDING_FILE).unlink(missing_ok=True)
    order: list[str] = []
    from marigold.core import loader, text_encoder  # where checkpoint.py's encoder and weight reading now live

    compute, read = text_encoder._compute_empty_embedding, loader._read_state
    monkeypatch.setattr(text_encoder, "_compute_empty_embedding", lambda f: (order.append("encoder"), compute(f))[1])
    monkeypatch.setattr(loader, "_read_state", lambda *a: (order.append("weights"), read(*a))[1])
    marigold.load(folder, device="cpu", dtype="fp32", progress=False)
    assert order[0] == "encoder" and order.count("encoder") == 1 and order.count("weights") == 2
    order.clear()
    marigold.load(folder, device="cpu", dtype="fp32", progress=False)  # later runs: the cache, no encoder
    assert order == ["weights", "weights"]


@pytest.mark.parametrize("repo,task", [("GonzaloMG/marigold-e2e-ft-depth", "depth"),
                                       ("GonzaloMG/marigold-e2e-ft-normals", "normals")])
def test_e2e_fine_tuned_checkpoints_load_from_their_stable_diffusion_model_index(make_checkpoint, tmp_path,
                                                                                   monkeypatch, repo, task):
    """Garcia et al.'s repos carry a plain StableDiffusionPipeline model_index.json; the published facts give
    the task and the single step of their protocol."""
    assert repo in marigold.PUBLISHED
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snap = _fake_hub_cache(make_checkpoint(task), tmp_path / "hub", repo)
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.31.0.dev0",
             "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"]}
    (snap / "model_index.json").write_text(json.dumps(index))
    m = marigold.load(repo, cache_dir=tmp_path / "hub", device="cpu", dtype="fp32", progress=False)
    assert m.task == task and m.default_denoising_steps == 1
    assert checkpoint.inspect(snap)["task"] == task  # found from the hub cache layout alone
    plain = make_checkpoint(task, copy_to=tmp_path / "plain")
    (plain / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(marigold.CheckpointError, match="not a Marigold one"):
        checkpoint.inspect(plain)  # the same files outside a known repo are not guessed at
