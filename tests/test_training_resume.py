"""Resuming an interrupted training (`lensroute train --resume`), on the real fixture catalogue:
the resumed run ends where an uninterrupted one ends, and a checkpoint it cannot continue is
refused in one line; and where `train --out` may write."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from recommender.errors import Cancelled, FormatError
from recommender.store import Store
from tests.conftest import REPO, run_torchrun, torchrun_port_race


@pytest.fixture
def prepared(fixture_store: Store, encoder: Path):  # type: ignore[no-untyped-def]
    from recommender.pipeline import prepare

    return prepare(fixture_store)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    first, second = a.state_dict(), b.state_dict()
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def _stop_after_epoch(token, epoch: int):  # type: ignore[no-untyped-def]
    def progress(done: float, total: float | None = None, message: str = "") -> None:
        if message.startswith(f"epoch {epoch}:"):
            token.cancel()  # the next batch raises: the following epoch is left half done

    return progress


def test_an_interrupted_training_resumes_to_the_model_an_uninterrupted_one_gives(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from recommender.progress import CancelToken
    from recommender.splits import make_split
    from recommender.training import TrainConfig, train

    space, groups, _ = prepared
    split = make_split(space, groups, "new-dataset", seed=0)
    config = TrainConfig(epochs=3, patience=5, hidden=32)
    whole = train(space, split.train, split.val, config, unknown_datasets=True)

    checkpoint = tmp_path / "ranker.checkpoint.pt"
    token = CancelToken()
    with pytest.raises(Cancelled):
        train(space, split.train, split.val, config, unknown_datasets=True, checkpoint=checkpoint,
              progress=_stop_after_epoch(token, 2), cancel=token)
    assert torch.load(checkpoint, weights_only=False)["epoch"] == 1  # the last finished epoch (0-based)
    resumed = train(space, split.train, split.val, config, unknown_datasets=True, checkpoint=checkpoint, resume=True)
    # the dropout draws continue where they stopped, so resuming is the same as never stopping
    assert _same_weights(resumed.model, whole.model)
    assert resumed.history == whole.history and resumed.best_epoch == whole.best_epoch
    # its throughput counts only the rows it trained on itself, in the time it took
    assert resumed.resumed_epochs == 2 and resumed.rows_seen == whole.rows_seen
    assert resumed.rows_per_second == pytest.approx((resumed.rows_seen - resumed.resumed_rows) / resumed.seconds)
    assert 0 < resumed.resumed_rows < resumed.rows_seen


def test_a_run_that_had_stopped_early_is_not_trained_further_on_resume(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from recommender.splits import make_split
    from recommender.training import TrainConfig, train

    space, groups, _ = prepared
    split = make_split(space, groups, "new-dataset", seed=0)
    config = TrainConfig(epochs=12, patience=1, hidden=32)
    checkpoint = tmp_path / "ranker.checkpoint.pt"
    first = train(space, split.train, split.val, config, unknown_datasets=True, checkpoint=checkpoint)
    assert len(first.history) < config.epochs  # it stopped early (validation τ_w stopped improving)
    again = train(space, split.train, split.val, config, unknown_datasets=True, checkpoint=checkpoint, resume=True)
    assert again.history == first.history and _same_weights(again.model, first.model)


def test_a_checkpoint_that_cannot_be_continued_is_refused_and_left_alone(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from recommender.splits import make_split
    from recommender.training import TrainConfig, train

    space, groups, _ = prepared
    split = make_split(space, groups, "new-dataset", seed=0)
    config = TrainConfig(epochs=1, hidden=32)
    checkpoint = tmp_path / "ranker.checkpoint.pt"
    train(space, split.train, split.val, config, unknown_datasets=True, checkpoint=checkpoint)
    written = checkpoint.read_bytes()
    # more epochs or another device may change between the runs; the model's shape or the data may not
    train(space, split.train, split.val, replace(config, epochs=2), unknown_datasets=True, checkpoint=checkpoint, resume=True)
    checkpoint.write_bytes(written)
    with pytest.raises(FormatError, match=r"other training settings \(hidden, lr\)"):
        train(space, split.train, split.val, replace(config, hidden=16, lr=1e-3), unknown_datasets=True,
              checkpoint=checkpoint, resume=True)
    # the same models and datasets, one result changed since (a re-import, a crawl): the shape fits, the data does not
    changed = replace(split.train, z=[-split.train.z[0], *split.train.z[1:]])
    with pytest.raises(FormatError, match="for another catalogue"):
        train(space, changed, split.val, config, unknown_datasets=True, checkpoint=checkpoint, resume=True)
    saved = torch.load(checkpoint, weights_only=False)
    saved["lens_config"]["n_models"] += 1  # written when the catalogue had one more model
    torch.save(saved, checkpoint)
    other = checkpoint.read_bytes()
    with pytest.raises(FormatError, match="for another catalogue"):
        train(space, split.train, split.val, config, unknown_datasets=True, checkpoint=checkpoint, resume=True)
    assert checkpoint.read_bytes() == other
    checkpoint.write_bytes(written)
    assert checkpoint.read_bytes() == written
    checkpoint.write_bytes(written[: len(written) // 2])  # a checkpoint cut short (a full disk, a killed copy)
    with pytest.raises(FormatError, match="cannot be read"):
        train(space, split.train, split.val, config, unknown_datasets=True, checkpoint=checkpoint, resume=True)


def test_train_resume_from_the_command_line_refuses_a_broken_checkpoint_in_one_line(fixture_store: Store, encoder: Path,
                                                                                   tmp_path: Path) -> None:
    out = tmp_path / "ranker"
    (tmp_path / "ranker.checkpoint.pt").write_bytes(b"not a checkpoint")
    done = subprocess.run([sys.executable, "-m", "app", "--db", fixture_store.url, "train", "--out", str(out), "--resume"],
                          capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**os.environ, "LENSROUTE_ENCODER_DIR": str(encoder)})
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be read" in lines[0] and "without --resume" in lines[0]
    assert not out.exists() and (tmp_path / "ranker.checkpoint.pt").read_bytes() == b"not a checkpoint"


def test_ctrl_c_during_a_cli_training_then_resume_finishes_it(fixture_store: Store, encoder: Path, tmp_path: Path) -> None:
    import json
    import signal
    import time

    out = tmp_path / "ranker"
    checkpoint = tmp_path / "ranker.checkpoint.pt"
    env = {**os.environ, "LENSROUTE_ENCODER_DIR": str(encoder)}
    args = [sys.executable, "-m", "app", "--db", fixture_store.url, "train", "--out", str(out)]
    process = subprocess.Popen([*args, "--epochs", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, cwd=REPO)
    deadline = time.time() + 300
    while not checkpoint.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)  # after the first finished epoch, long before the 60th
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "--resume" in err
    assert checkpoint.exists() and not out.exists()
    saved = torch.load(checkpoint, weights_only=False)
    finished = saved["epoch"] + 1
    saved["history"][0]["interrupted_run"] = True  # a mark that only a run continuing this checkpoint carries on
    torch.save(saved, checkpoint)

    done = subprocess.run([*args, "--resume", "--epochs", str(finished + 1), "--json"], capture_output=True, text=True,
                          timeout=600, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["validation"]["best_epoch"] <= finished and summary["training"]["resumed_after_epoch"] == finished
    history = json.loads((out / "manifest.json").read_text())["validation"]["history"]
    assert len(history) == finished + 1 and history[0].get("interrupted_run")  # continued, one more epoch
    assert not checkpoint.exists()  # finished: nothing left to resume

    again = subprocess.run([*args, "--resume", "--epochs", "1", "--json"], capture_output=True, text=True, timeout=600,
                           env=env, cwd=REPO)
    assert again.returncode == 0 and "no unfinished training" in again.stderr


def test_train_out_creates_missing_folders_and_refuses_an_impossible_one_before_training(fixture_store: Store, encoder: Path,
                                                                                        tmp_path: Path) -> None:
    env = {**os.environ, "LENSROUTE_ENCODER_DIR": str(encoder)}
    (tmp_path / "a-file").write_text("not a folder")
    bad = subprocess.run([sys.executable, "-m", "app", "--db", fixture_store.url, "train", "--out",
                          str(tmp_path / "a-file" / "ranker")], capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert bad.returncode == 2 and "cannot write the ranker to" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and (tmp_path / "a-file").read_text() == "not a folder"
    out = tmp_path / "new" / "deeper" / "ranker"  # used to fail at the first checkpoint: "Parent directory … does not exist"
    done = subprocess.run([sys.executable, "-m", "app", "--db", fixture_store.url, "-q", "train", "--epochs", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "manifest.json").is_file()


def test_data_parallel_training_refuses_an_impossible_out_before_starting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from recommender.distributed import main

    (tmp_path / "a-file").write_text("not a folder")
    assert main(["--db", f"sqlite:///{tmp_path / 'none.db'}", "--out", str(tmp_path / "a-file" / "ranker")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lensroute: error: cannot write the ranker to") and len(err.strip().splitlines()) == 1


def _torchrun(db: str, out: Path, *extra: str, procs: int = 2) -> list[str]:
    return [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node", str(procs), "-m",
            "recommender.distributed", "--db", db, "--out", str(out), *extra]


def _checksums(stdout: str) -> set[str]:
    import json

    return {json.loads(line)["checksum"] for line in stdout.splitlines() if line.startswith('{"rank"')}


@pytest.mark.slow
def test_an_interrupted_data_parallel_training_resumes_to_the_uninterrupted_model(
        fixture_store: Store, encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C to a two-process torchrun run (the signal a terminal sends its whole process group),
    then `--resume`: every rank gets back its own dropout draws, so the weights are those of a run
    never stopped; a checkpoint of another number of processes is refused in one line."""
    import shutil
    import signal
    import time

    env = {**os.environ, "LENSROUTE_ENCODER_DIR": str(encoder)}
    out, checkpoint = tmp_path / "ranker", tmp_path / "ranker.checkpoint.pt"
    for attempt in range(2):
        running = subprocess.Popen(_torchrun(fixture_store.url, out, "--epochs", "5000"), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, cwd=REPO, env=env, start_new_session=True)
        deadline = time.monotonic() + 300
        while not checkpoint.exists() and running.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if running.poll() is None:
            break
        err = running.communicate()[1]  # it ended before its first checkpoint: launch again only on the port race
        if attempt or not torchrun_port_race(err):
            pytest.fail(f"torchrun ended ({running.returncode}) before the first checkpoint:\n{err[-3000:]}")
    os.killpg(running.pid, signal.SIGINT)
    _, err = running.communicate(timeout=300)
    assert running.returncode != 0 and "training cancelled; run it again with --resume" in err
    assert "KeyboardInterrupt" not in err  # the ranks stop in one line (torchrun prints its own report)
    finished = torch.load(checkpoint, weights_only=False)["epoch"]
    assert 0 <= finished < 100
    kept = tmp_path / "kept.checkpoint.pt"
    shutil.copy(checkpoint, kept)

    epochs = str(finished + 3)
    resumed = run_torchrun(_torchrun(fixture_store.url, out, "--epochs", epochs, "--resume"), timeout=600, cwd=REPO, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not checkpoint.exists() and (out / "scorer.onnx").is_file()
    whole = run_torchrun(_torchrun(fixture_store.url, tmp_path / "whole", "--epochs", epochs), timeout=600, cwd=REPO, env=env)
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert len(_checksums(resumed.stdout)) == 1 and _checksums(resumed.stdout) == _checksums(whole.stdout)
    # the validation run is what was resumed: its losses (every rank's batches, each rank's own
    # dropout draws) and τ per epoch are those of the run never stopped
    import json

    def validation(folder: Path) -> dict:
        return json.loads((folder / "manifest.json").read_text())["validation"]

    assert validation(out) == validation(tmp_path / "whole")

    # one process cannot continue what two began: the groups each rank takes depend on the count
    other = tmp_path / "other"
    shutil.copy(kept, tmp_path / "other.checkpoint.pt")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.setenv("LENSROUTE_ENCODER_DIR", str(encoder))
    from recommender.distributed import main

    capsys.readouterr()
    assert main(["--db", fixture_store.url, "--out", str(other), "--epochs", epochs, "--resume"]) == 2
    said = capsys.readouterr().err.strip()
    assert said.startswith("lensroute: error: the checkpoint") and "run of 2 process(es)" in said and "\n" not in said
    assert (tmp_path / "other.checkpoint.pt").read_bytes() == kept.read_bytes()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
