from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, tiny_config_text
from training.config import load_config
from training.train import Trainer, load_checkpoint, main, state_sha256


def _config(tmp_path: Path, photo_folder: Path, name: str, steps: int, **extra: object) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(tiny_config_text(photo_folder, tmp_path / name, steps, **extra))
    return path


def test_training_on_a_fixed_batch_lowers_the_loss(tmp_path: Path, photo_folder: Path) -> None:
    # Fixed, harsh thresholds so that the batch surely holds clipped pixels to learn from.
    cfg = load_config(_config(tmp_path, photo_folder, "fixed", 1, w_perceptual=0.0, w_adversarial=0.0,
                              lr=3e-3, batch=4, crop=48, over_range=[150, 150], under_range=[60, 60]))
    trainer = Trainer(cfg)
    losses = [trainer.train_step(step=0)["mse"] for _ in range(40)]  # step 0: the same batch each time
    assert losses[0] > 1e-3
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0], losses


def test_full_loss_run_writes_log_plot_and_checkpoint(tmp_path: Path, photo_folder: Path) -> None:
    assert main(["--config", str(_config(tmp_path, photo_folder, "full", 3))]) == 0
    out = tmp_path / "full"
    rows = (out / "loss.csv").read_text().splitlines()
    assert rows[0].startswith("step,total,mse,perceptual,adversarial,disc")
    assert len(rows) == 4
    last = dict(zip(rows[0].split(","), rows[-1].split(","), strict=True))
    assert float(last["perceptual"]) > 0 and float(last["adversarial"]) > 0 and float(last["disc"]) > 0
    assert (out / "loss.png").stat().st_size > 1000
    ck = load_checkpoint(out / "checkpoint.pt")
    assert ck["step"] == 3 and ck["history"][-1]["steps"] == 3


def test_resume_is_bit_exact(tmp_path: Path, photo_folder: Path) -> None:
    straight = load_config(_config(tmp_path, photo_folder, "straight", 4))
    Trainer(straight).run()
    # Same run, interrupted after step 2 and started again with the same command.
    cfg = _config(tmp_path, photo_folder, "resumed", 4)
    Trainer(load_config(cfg, steps=2)).run()
    Trainer(load_config(cfg)).run()
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    for key in ("generator", "discriminator"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs after resume"
    assert a["opt_g"]["state"][0]["step"] == b["opt_g"]["state"][0]["step"]
    rows = (tmp_path / "resumed" / "loss.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]


def test_ddp_replicas_agree(tmp_path: Path, photo_folder: Path) -> None:
    cfg = _config(tmp_path, photo_folder, "ddp", 3)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "training.train", "--config", str(cfg),
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    digests = json.loads((tmp_path / "ddp" / "replicas.json").read_text())["sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    # and the replicas did train: the weights moved away from their initial values
    ck = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt")
    assert ck["history"][-1]["world_size"] == 2


def test_bad_config_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("stepz = 3\n")
    assert main(["--config", str(bad)]) == 2
    assert "unknown config keys ['stepz']" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.toml")]) == 2


def test_state_digest_changes_with_weights() -> None:
    from training.models import Generator

    g = Generator(width=4)
    before = state_sha256([g])
    with torch.no_grad():
        g.e1[0].weight.add_(1e-3)
    assert state_sha256([g]) != before


def test_shipped_configs_load() -> None:
    for path in sorted((REPO / "training" / "configs").glob("*.toml")):
        cfg = load_config(path)
        assert cfg.steps > 0, path


def test_second_stage_starts_from_the_first(tmp_path: Path, photo_folder: Path) -> None:
    first = load_config(_config(tmp_path, photo_folder, "stage1", 2, w_perceptual=0.0, w_adversarial=0.0))
    Trainer(first).run()
    stage1 = tmp_path / "stage1" / "checkpoint.pt"
    second = load_config(_config(tmp_path, photo_folder, "stage2", 2, init_from=str(stage1)))
    trainer = Trainer(second)
    assert state_sha256([trainer.g]) == state_sha256([_generator(stage1)])
    trainer.run()
    history = load_checkpoint(tmp_path / "stage2" / "checkpoint.pt")["history"]
    assert [h["steps"] for h in history] == [2, 2]
    assert history[0]["losses"]["perceptual"] == 0.0 and history[1]["losses"]["perceptual"] == 0.095


def _generator(path: Path) -> torch.nn.Module:
    from training.train import generator_from_checkpoint

    return generator_from_checkpoint(load_checkpoint(path))


def test_torchrun_two_nodes_on_one_machine(tmp_path: Path, photo_folder: Path) -> None:
    """``torchrun --nnodes 2``: two launchers, as on two machines (node ranks 0 and 1, one process
    each, gloo over the loopback), agree on the weights and record a world of 2."""
    import socket

    cfg = _config(tmp_path, photo_folder, "nodes", 3)
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))

    def node(rank: int) -> subprocess.Popen[str]:
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
            "--node_rank", str(rank), "--master_addr", "127.0.0.1", "--master_port", str(port),
            "-m", "training.train", "--config", str(cfg),
        ]
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    nodes = [node(0), node(1)]
    results = [p.communicate(timeout=300) for p in nodes]
    for p, (_, err) in zip(nodes, results, strict=True):
        assert p.returncode == 0, err[-3000:]
    digests = json.loads((tmp_path / "nodes" / "replicas.json").read_text())["sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert load_checkpoint(tmp_path / "nodes" / "checkpoint.pt")["history"][-1]["world_size"] == 2
