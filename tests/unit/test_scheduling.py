"""The flow's device slots and item plan (pure Python: no GPU, DVC or Prefect needed)."""

import pytest

from pipelines.scheduling import Plan, Slot, make_slots, visible_gpus

# A study's shape: two independent train items, their evaluations, one report.
STUDY = {
    "data": [],
    "train@a": ["data"],
    "train@b": ["data"],
    "eval@a": ["train@a", "data"],
    "eval@b": ["train@b", "data"],
    "report": ["eval@a", "eval@b", "train@a", "train@b"],
}


def test_visible_gpus_follow_cuda_visible_devices():
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-ab12, GPU-cd34"}) == ["GPU-ab12", "GPU-cd34"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0,-1,1"}) == ["0"]  # CUDA stops at -1


def test_visible_gpus_without_nvidia_smi(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert visible_gpus({}) == []


def test_gpu_slots_pin_each_item_and_interleave_gpus():
    slots = make_slots(["0", "1"], per_gpu=2, workers=8)
    assert [s.name for s in slots] == ["gpu0", "gpu1", "gpu0.1", "gpu1.1"]
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0", "1", "0", "1"]
    assert all("OMP_NUM_THREADS" not in s.env for s in slots)  # threads left to torch


def test_cpu_slots_and_threads():
    assert make_slots([], workers=2) == [Slot("cpu0"), Slot("cpu1")]
    slots = make_slots([], workers=3, threads_per_item=1)
    assert [s.env for s in slots] == [{"OMP_NUM_THREADS": "1"}] * 3
    assert make_slots(["7"], threads_per_item=2)[0].env == {
        "CUDA_VISIBLE_DEVICES": "7",
        "OMP_NUM_THREADS": "2",
    }


@pytest.mark.parametrize("kwargs", [{"workers": 0}, {"per_gpu": 0}, {"threads_per_item": 0}])
def test_slot_counts_must_be_positive(kwargs):
    with pytest.raises(ValueError, match="at least 1"):
        make_slots([], **kwargs)


def test_plan_starts_items_once_their_upstream_is_done():
    plan = Plan(STUDY)
    assert plan.ready() == ["data"]
    plan.start("data")
    assert plan.ready() == []
    plan.finish("data", "cached")
    assert plan.ready() == ["train@a", "train@b"]  # independent: both at once
    for item in ("train@a", "train@b"):
        plan.start(item)
    plan.finish("train@b", "ran")
    assert plan.ready() == ["eval@b"]  # train@a still running
    plan.start("eval@b")
    plan.finish("eval@b", "ran")
    plan.finish("train@a", "ran")
    assert plan.ready() == ["eval@a"]
    plan.start("eval@a")
    plan.finish("eval@a", "ran")
    assert plan.ready() == ["report"] and plan.open


def test_a_failure_skips_only_what_it_blocks():
    plan = Plan(STUDY)
    for item in ("data", "train@a", "train@b"):
        plan.start(item)
    plan.finish("data", "ran")
    plan.finish("train@a", "failed: exit 1")
    assert plan.outcome["eval@a"] == "skipped: upstream train@a failed"
    assert plan.outcome["report"] == "skipped: upstream train@a failed"
    assert "eval@b" not in plan.outcome and plan.open  # the other seed goes on
    plan.finish("train@b", "ran")
    assert plan.ready() == ["eval@b"]
    plan.start("eval@b")
    plan.finish("eval@b", "ran")
    assert not plan.open


def test_plan_rejects_unknown_upstream_items():
    with pytest.raises(ValueError, match="missing"):
        Plan({"train": ["augment"]})
