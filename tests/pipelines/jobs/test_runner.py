"""The job runner: idempotency, resume after a failure, the lock, and the history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from filelock import FileLock

from pipelines.jobs.history import read_history
from pipelines.jobs.locks import JobLockedError
from pipelines.jobs.runner import Step, run_job
from pipelines.settings import load_settings


@pytest.fixture
def settings(tmp_path: Path):
    return load_settings(home=tmp_path, data_dir=tmp_path / "data" / "raw")


def _counting_steps(calls: list[str], fail_on: set[str] | None = None) -> list[Step]:
    def make(name: str) -> Step:
        def run(ctx):
            if fail_on and name in fail_on:
                fail_on.discard(name)
                raise RuntimeError(f"{name} broke")
            calls.append(name)
            return {"seen": sorted(ctx.records)}

        return Step(name, run)

    return [make(n) for n in ("a", "b", "c")]


def test_finished_date_is_a_no_op_unless_forced(settings) -> None:
    calls: list[str] = []
    first = run_job(settings, job="t", business_date="2024-06-01", steps=_counting_steps(calls))
    assert first.status == "done"
    assert calls == ["a", "b", "c"]
    assert first.records["c"]["seen"] == ["a", "b"]
    again = run_job(settings, job="t", business_date="2024-06-01", steps=_counting_steps(calls))
    assert again.status == "already done"
    assert calls == ["a", "b", "c"]
    forced = run_job(
        settings, job="t", business_date="2024-06-01", steps=_counting_steps(calls), force=True
    )
    assert forced.status == "done"
    assert calls == ["a", "b", "c"] * 2


def test_failure_is_recorded_and_the_next_run_resumes(settings) -> None:
    calls: list[str] = []
    fail_on = {"b"}
    with pytest.raises(RuntimeError, match="b broke"):
        run_job(
            settings, job="t", business_date="2024-06-02", steps=_counting_steps(calls, fail_on)
        )
    assert calls == ["a"]
    hist = read_history(settings.layout.job_history_db)
    failed = hist.filter(hist["status"] == "failed")
    assert failed["step"].to_list() == ["b"]
    assert failed["error"].to_list() == ["b broke"]
    events = [json.loads(line) for line in (settings.layout.job_log).read_text().splitlines()]
    assert [(e["step"], e["status"]) for e in events] == [
        ("a", "running"),
        ("a", "done"),
        ("b", "running"),
        ("b", "failed"),
    ]
    result = run_job(
        settings, job="t", business_date="2024-06-02", steps=_counting_steps(calls, fail_on)
    )
    assert result.status == "done"
    assert calls == ["a", "b", "c"]  # "a" was not run twice


def test_second_run_is_locked_out(settings) -> None:
    settings.layout.lock_file.parent.mkdir(parents=True)
    with (
        FileLock(str(settings.layout.lock_file)),
        pytest.raises(JobLockedError, match="another freshcast job"),
    ):
        run_job(settings, job="t", business_date="2024-06-03", steps=_counting_steps([]))
    assert not (settings.layout.job_markers("t", "2024-06-03")).exists()


@pytest.mark.parametrize("harm", ["truncate", "delete"])
def test_a_damaged_output_is_rebuilt_not_trusted(settings, harm: str, capsys) -> None:
    import polars as pl

    out = settings.layout.recovered("2024-06-04")
    calls: list[str] = []

    def write(ctx):
        calls.append("recover")
        pl.DataFrame({"x": list(range(1000))}).write_parquet(out)
        return {"path": str(out)}

    def read(ctx):
        calls.append("train")
        return {"rows": pl.read_parquet(ctx.records["recover"]["path"]).height}

    steps = [Step("recover", write), Step("train", read)]
    out.parent.mkdir(parents=True)
    assert run_job(settings, job="t", business_date="2024-06-04", steps=steps).status == "done"
    if harm == "truncate":
        out.write_bytes(out.read_bytes()[:100])
    else:
        out.unlink()
    again = run_job(settings, job="t", business_date="2024-06-04", steps=steps)
    assert again.status == "done"
    assert calls == ["recover", "train", "recover"]  # only the damaged step runs again
    assert pl.read_parquet(out).height == 1000
    said = capsys.readouterr().err
    assert "done earlier, but its output" in said
    assert ("unreadable" if harm == "truncate" else "missing") in said
    # Intact again: the next run is a no-op.
    assert run_job(settings, job="t", business_date="2024-06-04", steps=steps).status == (
        "already done"
    )


def test_a_step_whose_input_changed_runs_again(settings, tmp_path: Path, capsys) -> None:
    """A resumed job validates again when the dataset changed after it was validated, so
    no later step (register among them) runs on data that was never checked."""
    from pipelines.data import io

    data = tmp_path / "train.parquet"
    data.write_bytes(b"first version")
    calls: list[str] = []

    def validate(ctx):
        calls.append("validate")
        return {"inputs": {str(data): io.file_stamp(data)}}

    def register(ctx):
        if "validate" in calls and len(calls) == 1:
            calls.append("register failed")
            raise RuntimeError("the registry was down")
        calls.append("register")
        return {}

    steps = [Step("validate", validate), Step("register", register)]
    with pytest.raises(RuntimeError):
        run_job(settings, job="t", business_date="2024-06-05", steps=steps)
    data.write_bytes(b"second, longer version")  # the dataset changed in between
    run_job(settings, job="t", business_date="2024-06-05", steps=steps)
    assert calls == ["validate", "register failed", "validate", "register"]
    said = " ".join(capsys.readouterr().err.split())  # the console wraps long lines
    assert f"its input {data} changed since: running it again" in said
